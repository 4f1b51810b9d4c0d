// CLIP vision as a family part (models/family.h): an ImageEncoder whose output is
// "clip_fea" [patches + 1, width] (ViT-H/14: [257, 1280]), what Wan's image-to-video DiT
// reads. Recognition and construction for the registry live here too.
#pragma once

#include <memory>
#include <string>

#include "models/family.h"

namespace raylight {

bool clip_vision_matches(const WeightStore& weights);
// "CLIP ViT-H/14" or "CLIP vision custom (...)"; checks every tensor.
std::string clip_vision_variant(const WeightStore& weights);
std::unique_ptr<ImageEncoder> make_clip_vision_encoder(std::unique_ptr<WeightStore> weights, Backend& backend,
                                                       const std::string& source);

}  // namespace raylight
