// The Wan 2.1 diffusion transformer, written once against the Backend op set, the
// WeightStore and the SequenceAttention seam. Nothing here knows how many processes run
// it or where its weights come from.
#pragma once

#include <vector>

#include "backend/backend.h"
#include "models/family.h"
#include "models/wan/wan_config.h"
#include "parallel/sequence_attention.h"
#include "parallel/weight_store.h"

namespace raylight {

struct WanInputs {
  Tensor latent;    // [in_channels, F, H, W]; 16 channels (the noisy video latent)
  double timestep;  // 0..1000 (1000 * sigma)
  Tensor context;   // [text tokens, text_dim], up to text_len tokens; zero-padded to text_len
  Tensor clip_fea;  // I2V only: [image tokens, clip_dim] (FLF2V: both frames', [514, 1280])
  Tensor y;         // I2V (and Wan 2.2 I2V): [in_dim - 16, F, H, W] mask + image latent, concatenated to latent
  // TI2V only (Wan 2.2 5B image-to-video): the image's normalised latent [in_dim, 1, H, W].
  // It replaces the latent's first frame, whose tokens run at timestep 0 (per-token
  // timesteps, textimage2video.py); the sampling loop writes it back into its sample after
  // every step (DenoiserSpec::latent_pin), as the official loop does.
  Tensor first_frame;
};

// Context embedding computed once per prompt and reused by every step.
struct WanContext {
  Tensor tokens;             // [image tokens + text_len or text_len, dim]
  int64_t image_tokens = 0;  // the image tokens in front (I2V: as many as clip_fea has)
};

class WanModel final : public Denoiser {
 public:
  WanModel(WanConfig config, WeightStore& weights, Backend& backend, SequenceAttention& attn);
  const WanConfig& config() const { return config_; }

  // The seam's interface: conditioning {"context"} (and {"clip_fea", "y"} for I2V), checked
  // by the family's spec.
  std::unique_ptr<PreparedConditioning> prepare(const Conditioning& conditioning) override;
  Tensor predict(const Tensor& latent, double timestep, const PreparedConditioning& c) override;

  // Text (and image) conditioning to model width; independent of the timestep.
  WanContext embed_context(const Tensor& context, const Tensor& clip_fea);
  // The velocity prediction [out_dim, F, H, W] for one host latent, returned on the host.
  Tensor forward(const Tensor& latent, double timestep, const WanContext& context,
                 const Tensor& y = {}, const Tensor& first_frame = {});
  Tensor forward(const WanInputs& in);

 private:
  struct TimeEmbedding {
    Tensor e;   // [dim]
    Tensor e0;  // [6, dim]
  };
  // Local rows [begin, end) that share one timestep. Per-token timesteps take a few runs
  // (the conditioned first frame's tokens at t = 0, the rest at t); one run otherwise.
  struct TimeRun {
    int64_t begin, end;
    TimeEmbedding t;
  };
  TimeEmbedding embed_time(double timestep);
  std::vector<TimeRun> time_runs(double timestep, int64_t first_frame_tokens, int64_t tokens);
  // A block's last gated residual (the FFN's), left for the next norm over x to add in the
  // same pass (the next block's adaLN, or the head's): one read and write of the fp32
  // stream fewer per block. Empty when it was added at once.
  struct PendingResidual {
    Tensor y, gate;
  };
  // Updates the residual stream x (this rank's rows, fresh from the seam) in place; adds
  // `pending` first and may leave its own FFN residual there.
  void block(int index, Tensor& x, const std::vector<TimeRun>& t, const WanContext& ctx, PendingResidual& pending);
  // x_absmax (here and in the products below): max |x| from the norm that wrote x, or
  // undefined (Backend::linear's x_absmax).
  Tensor self_attention(const std::string& prefix, const Tensor& x, const Tensor& x_absmax);
  Tensor cross_attention(const std::string& prefix, const Tensor& x, const WanContext& ctx, const Tensor& x_absmax);
  Tensor head(Tensor& x, const std::vector<TimeRun>& t, PendingResidual& pending);
  Tensor linear(const Tensor& x, const std::string& name, const Tensor& x_absmax = {});
  // gelu_tanh(linear(x)), fused where the backend can.
  Tensor linear_gelu(const Tensor& x, const std::string& name, const Tensor& x_absmax = {});
  // linear of x by several layers "<prefix><name>" at once (one fp8 quantisation of x).
  std::vector<Tensor> linears(const Tensor& x, const std::string& prefix, const std::vector<std::string>& names,
                              const Tensor& x_absmax = {});

  WanConfig config_;
  WeightStore& weights_;
  Backend& ops_;
  SequenceAttention& attn_;
};

}  // namespace raylight
