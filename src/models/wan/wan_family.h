// Wan 2.1 as a family behind the seam (models/family.h): how its checkpoints are recognised
// (tensor names and shapes; the variant by shape, and by file name where shapes cannot
// tell), its defaults, latent shape and ComfyUI latent format, its conditioning tensors, and
// the parts a prompt-to-video pipeline needs with it (umT5-XXL, the Wan 2.1 VAE).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/family.h"
#include "models/model_card.h"
#include "models/wan/wan_config.h"

namespace raylight {

// True when the store holds a Wan DiT (cheap: three anchor tensors).
bool wan_matches(const WeightStore& weights);
// The spec of a Wan DiT config; `embedded` is the embedded model's name ("tiny") or "";
// `card` what the checkpoint's metadata says about its defaults and prompts.
std::shared_ptr<const DenoiserSpec> wan_spec(const WanConfig& config, const std::string& embedded = "",
                                             const std::string& note = "", ModelCard card = {});
// The spec of a Wan DiT store: every tensor is checked (errors name the first that does not
// fit). Where tensors cannot tell variants apart (Wan 2.1 14B and the Wan 2.2 A14B experts
// have the same tensors) `variant` (--variant) or else the file name of `source` decides;
// a variant this build cannot run is refused with its name.
std::shared_ptr<const DenoiserSpec> wan_spec(const WeightStore& weights, const std::string& source,
                                             const std::string& variant);
// Random-weight configs at real shapes for `raylight bench` ("wan-1.3b", "wan-14b").
std::vector<std::pair<std::string, WanConfig>> wan_bench_presets();

}  // namespace raylight
