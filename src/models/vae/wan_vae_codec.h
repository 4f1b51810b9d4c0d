// The Wan 2.1 VAE as a family part (models/family.h): a LatentCodec between the DiT's
// normalised latents [16, F', H', W'] and video pixels [3, 1 + 4(F'-1), 8H', 8W'].
// Recognition and construction for the registry live here too.
#pragma once

#include <memory>
#include <string>

#include "models/family.h"
#include "models/vae/wan_vae.h"

namespace raylight {

bool wan_vae_matches(const WeightStore& weights);
// "Wan 2.1 VAE (base width 96, 16 latent channels)"; checks every tensor.
std::string wan_vae_variant(const WeightStore& weights, const std::string& source);
std::unique_ptr<LatentCodec> make_wan_vae_codec(std::unique_ptr<WeightStore> weights, Backend& backend,
                                                const std::string& source);

}  // namespace raylight
