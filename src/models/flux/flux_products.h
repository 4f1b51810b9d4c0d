// The products of a Flux forward and of its conditioning embedding, listed from the config
// (DenoiserSpec::products): what a backend makes plans for before the first step. The list
// follows flux_model.cpp's calls; a product added there belongs here too. Reference latents
// (Kontext) add rows to the image stream that depend on the pictures: a job with references
// makes those plans at first use.
#pragma once

#include <vector>

#include "models/family.h"
#include "models/flux/flux_config.h"

namespace raylight {

// `text_tokens`: the T5 tokens (padded: 512 dev, 256 schnell); `image_tokens`: the latent's
// 2x2 patches; `rows(tokens)`: this process's rows of a segment. Weight dtypes are left for
// the caller.
std::vector<DenoiserProduct> flux_products(const FluxConfig& c, int64_t text_tokens, int64_t image_tokens,
                                           const SegmentRows& rows);

}  // namespace raylight
