// The embedded VAE for the CPU demo: the Wan 2.1 VAE architecture at base width 8 (96 in
// the released model) with the DiT's 16 latent channels and weights made deterministically
// from the documented noise generator, so "tiny" decodes without files, identically
// everywhere, in well under a second: a [16, 3, 16, 16] latent -> [3, 9, 128, 128] video.
#pragma once

#include <memory>

#include "models/vae/wan_vae_config.h"
#include "parallel/weight_store.h"

namespace raylight {

WanVaeConfig wan_vae_tiny_config();
// Weights named and shaped exactly like a Wan 2.1 VAE checkpoint (fp32).
std::unique_ptr<MemoryWeights> wan_vae_tiny_weights();
// Tiny weights for any Wan-style VAE tensor list (the Wan 2.2 VAE's too), named `model` in
// the raylight.model metadata.
std::unique_ptr<MemoryWeights> wan_style_vae_tiny_weights(const std::vector<std::pair<std::string, Shape>>& tensors,
                                                          const std::string& model);

}  // namespace raylight
