// Reading pictures people give as inputs (Kontext reference images, ...): PNG (libpng) and
// still WebP (libwebp, in builds with RAYLIGHT_VIDEO_IO), told apart by their first bytes,
// not the extension. Every file is hostile: it must be a regular file, decode whole, and hold
// at most kMaxPicturePixels pixels, each side at most kMaxPictureSide (checked from the
// header, before any pixel memory is taken); alpha is dropped, grey becomes RGB. Errors are
// raylight::Errors naming the path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace raylight {

constexpr int64_t kMaxPictureSide = 16384;
constexpr int64_t kMaxPicturePixels = int64_t{1} << 26;  // 8192 x 8192

struct RgbPicture {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> rgb;  // rows top-down, RGBRGB...
};

RgbPicture read_picture(const std::string& path);

// [3, H, W] fp32 in [-1, 1]: byte / 127.5 - 1 (the VAE's input range).
Tensor picture_tensor(const RgbPicture& picture);

}  // namespace raylight
