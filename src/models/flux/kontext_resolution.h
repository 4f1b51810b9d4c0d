// The sizes Flux Kontext was trained on, and how a reference picture is fitted to one the way
// ComfyUI's FluxKontextImageScale does: the listed resolution whose aspect ratio is nearest
// (ties: the smaller width, as Python's min over (difference, width, height)), the picture
// cut to that aspect ratio around its centre (comfy.utils.common_upscale, crop "center"),
// then resized with Lanczos (io/image/lanczos_resize.h).
#pragma once

#include <cstdint>

namespace raylight {

struct PictureSize {
  int64_t width = 0, height = 0;
};

// A rectangle of a picture in pixels.
struct PictureCrop {
  int64_t x = 0, y = 0, width = 0, height = 0;
};

// The preferred Kontext resolution for a picture of `size` (positive sides).
PictureSize kontext_resolution(PictureSize size);

// The centre cut of a picture of `size` to the aspect ratio of `target` (common_upscale's
// arithmetic: double precision, Python's round-half-even).
PictureCrop centre_crop(PictureSize size, PictureSize target);

}  // namespace raylight
