// Resizing 8-bit RGB pictures with Lanczos (a = 3) exactly as Pillow's Image.resize(LANCZOS)
// does it, which is what ComfyUI's "lanczos" upscale (comfy.utils.lanczos) and the official
// Kontext code run: a horizontal then a vertical pass, each rounding to bytes, with
// coefficients over the filter's support widened by the scale when shrinking, normalised,
// and applied in 22-bit fixed point. The same bytes as Pillow, so a reference picture
// resized here encodes as it does in ComfyUI.
#pragma once

#include "io/image/image_reader.h"

namespace raylight {

// `picture` resized to width x height (both positive).
RgbPicture resize_lanczos(const RgbPicture& picture, int64_t width, int64_t height);

// The rectangle (x, y, width, height) of `picture`, inside it.
RgbPicture crop_picture(const RgbPicture& picture, int64_t x, int64_t y, int64_t width, int64_t height);

}  // namespace raylight
