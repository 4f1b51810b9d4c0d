// The Wan 2.2 VAE as a family part (models/family.h): a LatentCodec between TI2V-5B's
// normalised latents [48, F', H', W'] and video pixels [3, 1 + 4(F'-1), 16H', 16W'], with
// the tiled / rank-spread decode (region decoder, memory model). Recognition too.
#pragma once

#include <memory>
#include <string>

#include "models/family.h"

namespace raylight {

bool wan22_vae_matches(const WeightStore& weights);
// "Wan 2.2 VAE (encoder width 160, decoder width 256, 48 latent channels)"; checks every tensor.
std::string wan22_vae_variant(const WeightStore& weights, const std::string& source);
std::unique_ptr<LatentCodec> make_wan22_vae_codec(std::unique_ptr<WeightStore> weights, Backend& backend,
                                                  const std::string& source);

}  // namespace raylight
