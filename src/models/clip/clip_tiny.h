// Tiny CLIP towers for tests: the real architectures at width 32 (4 heads of 8, MLP 64),
// weights made deterministically from the documented noise generator, scaled so
// activations stay O(1). The heads travel as the metadata raylight.clip_heads.
#pragma once

#include <memory>

#include "models/clip/clip_config.h"
#include "parallel/weight_store.h"

namespace raylight {

// Text: 2 layers, vocab 1024, 16 positions, quick_gelu (CLIP-L's layout and activation).
ClipConfig clip_text_tiny_config();
// Vision: 3 layers, patch 4 on 16 x 16 images (17 tokens), erf GELU.
ClipConfig clip_vision_tiny_config();
// Weights of `c` under HF names ("text_model." / "vision_model." prefix), fp32.
std::unique_ptr<MemoryWeights> clip_random_weights(const ClipConfig& c);

}  // namespace raylight
