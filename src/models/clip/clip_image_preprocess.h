// CLIP's image preprocessing as Wan's clip.py does it for image-to-video: the image, host
// fp32 [3, H, W] in [-1, 1], resized to size x size with PyTorch's bicubic F.interpolate
// (align_corners False, A = -0.75, no antialias, edge samples clamped), mapped to [0, 1] and
// normalised with CLIP's mean and std. The aspect ratio is not kept (Wan stretches too).
#pragma once

#include "core/tensor.h"

namespace raylight {

// Errors name what is wrong: not [3, H, W], an empty or huge side, a non-finite value.
Tensor clip_preprocess_image(const Tensor& image, int64_t size);

}  // namespace raylight
