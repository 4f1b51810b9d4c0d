// Flux.1 (dev, schnell; Kontext and Krea load as dev) as a family behind the seam
// (models/family.h): recognition, the variant, defaults, latent shape and ComfyUI format,
// conditioning (T5 tokens, CLIP pooled vector, distilled guidance), the shift rule, and
// the parts a prompt-to-image pipeline needs (T5-XXL, CLIP-L, the Flux VAE).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/family.h"
#include "models/flux/flux_config.h"

namespace raylight {

// Official names, or diffusers' FluxTransformer2DModel names (models/flux/flux_diffusers.h).
bool flux_matches(const WeightStore& weights);
// The store under the official names: diffusers-named files through the renaming view.
std::unique_ptr<WeightStore> flux_official_names(std::unique_ptr<WeightStore> weights, const std::string& source);
// Checks every tensor; `variant` (--variant) or else the file name of `source` names
// checkpoints with the same tensors (dev, Kontext, Krea).
std::shared_ptr<const DenoiserSpec> flux_spec(const WeightStore& weights, const std::string& source,
                                              const std::string& variant);
// Random-weight configs at real shapes for `raylight bench` ("flux-dev").
std::vector<std::pair<std::string, FluxConfig>> flux_bench_presets();

}  // namespace raylight
