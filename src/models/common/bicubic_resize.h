// Resizing pictures as PyTorch's F.interpolate(mode="bicubic", align_corners=False) does
// (A = -0.75, no antialias, edge samples clamped): what the reference code resizes images
// with (Wan's image-to-video frames and its CLIP preprocessing). No clamping of the result:
// bicubic overshoots a little past [-1, 1], as the reference's does.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace raylight {

// [C, H, W] fp32 -> [C, out_h, out_w]; errors say what is wrong (rank, empty or huge sides,
// non-finite values).
Tensor bicubic_resize(const Tensor& image, int64_t out_h, int64_t out_w);

// The centred crop of [C, H, W] to the aspect ratio out_w : out_h, as ComfyUI's
// common_upscale(..., crop="center") takes it before scaling: the longer side loses
// round((side - side * ratio) / 2) pixels at each end.
Tensor center_crop_to_aspect(const Tensor& image, int64_t out_h, int64_t out_w);

}  // namespace raylight
