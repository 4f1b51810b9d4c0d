// The products of a Wan forward and of its conditioning embedding, listed from the config
// (DenoiserSpec::products): what a backend makes plans for before the first step. The list
// follows wan_model.cpp's calls; a product added there belongs here too (tests/unit
// test_wan_products checks the shapes a 1.3B and a 14B forward run).
#pragma once

#include <vector>

#include "models/family.h"
#include "models/wan/wan_config.h"

namespace raylight {

// `tokens`: the video's tokens (DenoiserSpec::sequence_tokens); `rows(tokens)`: the rows of
// them this process runs the blocks over. Weight dtypes are left for the caller.
std::vector<DenoiserProduct> wan_products(const WanConfig& c, int64_t tokens, const SegmentRows& rows);

}  // namespace raylight
