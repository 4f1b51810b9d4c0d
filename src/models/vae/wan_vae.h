// The Wan 2.1 video VAE: latents <-> pixels for the Wan DiT (4x in time, 8x8 in space,
// 16 latent channels). Decoding streams the latent through the decoder one chunk of frames
// at a time, as the official code does with its feat_cache: the first latent frame gives 1
// video frame, every later one 4. The encoder streams 1 frame, then 4 at a time, and gives
// the latent mean mu (image-to-video conditioning); both sides use the normalised latent
// the DiT sees, (mu - mean) / std per channel.
//
// Tensors at this API are host fp32 and channel-first [C, F, H, W] like the DiT's latents;
// inside, clips are frame-major [T, C, H, W] on the backend, so a chunk of frames is a
// block of rows and the per-chunk state is a few frames per layer.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "models/family.h"
#include "models/vae/wan_vae_config.h"
#include "parallel/weight_store.h"

namespace raylight {

class WanVae {
 public:
  // Called after each chunk with (latent frames done, latent frames in all).
  using Progress = std::function<void(int64_t done, int64_t total)>;

  // A VAE over a store (official key names, e.g. ComfyUI's wan_2.1_vae.safetensors, any
  // float dtype; or the embedded tiny one); `source` names it in errors.
  static std::unique_ptr<WanVae> from_weights(std::unique_ptr<WeightStore> weights, Backend& backend,
                                              const std::string& source = "the VAE weights");

  const WanVaeConfig& config() const { return config_; }
  // Video frames for a latent of `latent_frames` frames: 1 + 4 (F' - 1).
  static int64_t video_frames(int64_t latent_frames) { return 1 + 4 * (latent_frames - 1); }

  // latent [16, F', H', W'] (normalised, as the DiT samples it) -> video [3, 1 + 4(F'-1),
  // 8H', 8W'] in [-1, 1] (clamped). The first latent frame is decoded alone; then
  // `frames_per_chunk` latent frames at a time (1 = the official schedule; any value gives
  // the same video, larger ones use more memory).
  Tensor decode(const Tensor& latent, const Progress& progress = {}, int64_t frames_per_chunk = 1);
  // video [3, 1 + 4k, H, W] in [-1, 1], H and W multiples of 8 -> normalised latent mean
  // [16, 1 + k, H/8, W/8]. The first frame is encoded alone, then `frames_per_chunk` frames
  // at a time (a multiple of 4; 4 = the official schedule).
  Tensor encode(const Tensor& video, const Progress& progress = {}, int64_t frames_per_chunk = 4);

  // Regions of one latent, for the tiled decode (models/common/latent_tiles.h): the
  // decoder's prefix, through the middle attention (global over each frame), runs here over
  // the whole latent, chunk by chunk, and its output waits on the host ([384, F', H', W']
  // fp32 for the released VAE: 460 MB at 720p81); each region then streams through a fresh
  // copy of the local suffix, chunk by chunk, so the causal caches are exact across chunks.
  // A region decoded with region_context() latent pixels around it equals the whole
  // decode in its middle (wan_vae_net.h).
  std::unique_ptr<RegionDecoder> regions(const Tensor& latent, int64_t frames_per_chunk = 1);
  int64_t region_context() const;

 private:
  WanVae(WanVaeConfig config, std::unique_ptr<WeightStore> weights, Backend& backend)
      : config_(std::move(config)), weights_(std::move(weights)), ops_(backend) {}

  WanVaeConfig config_;
  std::unique_ptr<WeightStore> weights_;
  Backend& ops_;
};

}  // namespace raylight
