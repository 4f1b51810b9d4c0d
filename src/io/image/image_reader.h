// Reading a picture a user gives as an input (the image-to-video start frame): PNG
// (libpng). Every input is hostile: a regular file, sides at most kMaxImageSide (checked
// from the header before decoding); alpha is dropped, grey becomes RGB; every failure is a
// raylight::Error naming `path`.
#pragma once

#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace raylight {

constexpr int64_t kMaxImageSide = 8192;

// The picture as host fp32 [3, H, W] in [-1, 1] (byte b -> b / 127.5 - 1: the reference's
// to_tensor().sub(0.5).div(0.5)).
Tensor read_image(const std::string& path);

}  // namespace raylight
