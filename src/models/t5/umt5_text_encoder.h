// umT5 as a family part (models/family.h): a TextEncoder that turns a prompt into the
// "context" tensor [tokens, d_model] Wan's DiT reads. Recognition and construction for
// the registry live here too.
#pragma once

#include <memory>
#include <string>

#include "models/family.h"
#include "models/t5/umt5_encoder.h"

namespace raylight {

bool umt5_matches(const WeightStore& weights);
// "umT5-XXL" or "umT5 custom (...)"; checks every tensor (errors name the first misfit).
std::string umt5_variant(const WeightStore& weights);
// A TextEncoder over `weights`; fails (naming `source`) when no tokenizer is found in
// `tokenizer_path` or the store's spiece_model tensor.
std::unique_ptr<TextEncoder> make_umt5_text_encoder(std::unique_ptr<WeightStore> weights, Backend& backend,
                                                    const std::string& source, const std::string& tokenizer_path);

}  // namespace raylight
