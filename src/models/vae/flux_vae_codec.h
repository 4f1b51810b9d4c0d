// The Flux VAE as a family part (models/family.h): a LatentCodec between the DiT's latents
// [z, H/8, W/8], normalised as the DiT samples them ((mu - 0.1159) * 0.3611), and pictures
// [3, H, W] in [-1, 1]. Recognition and construction for the registry live here too.
#pragma once

#include <memory>
#include <string>

#include "models/family.h"

namespace raylight {

bool flux_vae_matches(const WeightStore& weights);
// "Flux VAE (base width 128, 16 latent channels)"; checks every tensor.
std::string flux_vae_variant(const WeightStore& weights, const std::string& source);
std::unique_ptr<LatentCodec> make_flux_vae_codec(std::unique_ptr<WeightStore> weights, Backend& backend,
                                                 const std::string& source);

}  // namespace raylight
