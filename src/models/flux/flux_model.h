// The Flux.1 diffusion transformer (MMDiT), written against the Backend op set, the
// WeightStore and the SequenceAttention seam, following the model's diagram:
//
//   img tokens (2x2 patches of the 16-channel latent) -> img_in; T5 tokens -> txt_in;
//   vec = time_in(t) + guidance_in(g) (dev) + vector_in(CLIP pooled)
//   double-stream blocks: text and image keep their own weights (modulation, qkv with
//     per-head RMSNorm, projection, MLP) and attend jointly over [text; image]
//   single-stream blocks: one stream [text; image], qkv and MLP from one product, one
//     output product over [attention | gelu(mlp)]
//   final layer on the image tokens, unpacked back to [16, H, W].
//
// The joint sequence is two segments for the attention seam: the text (unrotated: Flux's
// text positions are 0) and the image (positions (0, row, col), axes 16/56/56). Each rank
// holds its share of both, so the double blocks apply text weights to its text rows and
// image weights to its image rows; nothing here knows how many ranks there are.
#pragma once

#include "backend/backend.h"
#include "models/family.h"
#include "models/flux/flux_config.h"
#include "parallel/sequence_attention.h"
#include "parallel/weight_store.h"

namespace raylight {

class FluxModel final : public Denoiser {
 public:
  FluxModel(FluxConfig config, WeightStore& weights, Backend& backend, SequenceAttention& attn);
  const FluxConfig& config() const { return config_; }

  // Conditioning: "context" [tokens, context_in] (T5), "pooled" [vec_in] (CLIP), and for
  // dev models "guidance" [1] (the distilled guidance scale).
  std::unique_ptr<PreparedConditioning> prepare(const Conditioning& conditioning) override;
  // latent [16, H, W] (H, W even) at timestep 1000 * sigma -> velocity [16, H, W].
  Tensor predict(const Tensor& latent, double timestep, const PreparedConditioning& c) override;

 private:
  struct Streams {
    Tensor txt, img;  // this rank's rows of each segment
  };
  Tensor linear(const Tensor& x, const std::string& name);
  Tensor mlp_embedder(const Tensor& x, const std::string& name);
  // lin(silu(vec)) as [n, hidden] rows (shift, scale, gate, ...).
  Tensor modulation(const Tensor& silu_vec, const std::string& name, int64_t n);
  // q, k, v [rows, heads, head_dim] of the attention (storage for qkv() to fill).
  struct Qkv {
    Tensor q, k, v;
  };
  Qkv attention_operands(int64_t rows);
  // Rows [row0, row0 + rows) of `out` from a fused qkv product [rows, 3 * hidden]: q and k
  // RMS-normed per head and turned by the seam's RoPE for those rows, v as it is.
  void qkv(const Tensor& fused, const std::string& norm, Qkv& out, int64_t row0);
  // The blocks update the residual streams in place.
  void double_block(int index, Streams& s, const Tensor& silu_vec);
  void single_block(int index, Tensor& x, const Tensor& silu_vec);

  FluxConfig config_;
  WeightStore& weights_;
  Backend& ops_;
  SequenceAttention& attn_;
};

}  // namespace raylight
