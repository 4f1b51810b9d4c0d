// Reading pictures users give as inputs (image-to-video start and last frames, Kontext
// reference images): PNG (libpng), still WebP (libwebp, with RAYLIGHT_VIDEO_IO) and JPEG (libjpeg,
// with RAYLIGHT_JPEG). The format is told by the file's first bytes, not its name. Alpha is
// dropped (the colour values kept, as PIL's convert("RGB") that the reference code uses).
//
// Every input is hostile: the file must be a regular file of at most kMaxImageFileBytes,
// sides at most kMaxImageSide (checked from the header before decoding); every failure is
// a raylight::Error naming `path` (or `what` for bytes from a request).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace raylight {

constexpr int64_t kMaxImageSide = 8192;
constexpr int64_t kMaxImageFileBytes = int64_t{256} << 20;

// The picture as 8-bit RGB rows, for pictures resized as bytes before use (Kontext's
// Pillow-exact Lanczos fit).
struct RgbPicture {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> rgb;  // rows top-down, RGBRGB...
};
RgbPicture read_picture(const std::string& path);
RgbPicture decode_picture(const std::vector<uint8_t>& bytes, const std::string& what);

// [3, H, W] fp32 in [-1, 1] (byte b -> b / 127.5 - 1: the reference's
// to_tensor().sub(0.5).div(0.5), the VAE's input range).
Tensor picture_tensor(const RgbPicture& picture);

// The picture as host fp32 [3, H, W] in [-1, 1]: picture_tensor(read_picture(path)).
Tensor read_image(const std::string& path);
// The same from an encoded file's bytes (a server request); `what` names it in errors.
Tensor decode_image(const std::vector<uint8_t>& bytes, const std::string& what);

}  // namespace raylight
