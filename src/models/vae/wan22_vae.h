// The Wan 2.2 video VAE: latents [48, F', H/16, W/16] <-> pixels [3, 1 + 4(F'-1), H, W]
// for TI2V-5B. Streams like the Wan 2.1 VAE (wan_vae.h): the decoder one latent frame at a
// time (the first gives 1 video frame, every later one 4), the encoder 1 frame then 4 at a
// time, with the causal caches held by the layers. The 2x2 patchify of pixels into 12
// channels (vae2_2.py's "(c r q)" order: channel c * 4 + dw * 2 + dh) happens on the host,
// where the video is. Both sides use the normalised latent (mu - mean) / std per channel.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "models/family.h"
#include "models/vae/wan22_vae_config.h"
#include "parallel/weight_store.h"

namespace raylight {

class Wan22Vae {
 public:
  using Progress = std::function<void(int64_t done, int64_t total)>;

  static std::unique_ptr<Wan22Vae> from_weights(std::unique_ptr<WeightStore> weights, Backend& backend,
                                                const std::string& source = "the VAE weights");

  const Wan22VaeConfig& config() const { return config_; }
  static int64_t video_frames(int64_t latent_frames) { return 1 + 4 * (latent_frames - 1); }

  // latent [48, F', h, w] -> video [3, 1 + 4(F'-1), 16h, 16w] in [-1, 1] (clamped).
  Tensor decode(const Tensor& latent, const Progress& progress = {});
  // video [3, 1 + 4k, H, W] in [-1, 1], H and W multiples of 16 -> latent [48, 1 + k, H/16, W/16].
  Tensor encode(const Tensor& video, const Progress& progress = {});

  // The tiled decode's regions (as WanVae::regions): the prefix through the middle attention
  // over the whole latent, then each region through a fresh local suffix.
  std::unique_ptr<RegionDecoder> regions(const Tensor& latent);
  int64_t region_context() const;

 private:
  Wan22Vae(Wan22VaeConfig config, std::unique_ptr<WeightStore> weights, Backend& backend)
      : config_(std::move(config)), weights_(std::move(weights)), ops_(backend) {}
  Tensor checked_latent(const Tensor& latent) const;

  Wan22VaeConfig config_;
  std::unique_ptr<WeightStore> weights_;
  Backend& ops_;
};

}  // namespace raylight
