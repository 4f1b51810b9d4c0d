// 8-bit RGB frames: what every encoder here consumes and every decoder produces, so the
// float <-> byte mapping (clamp, round) lives in exactly one place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace raylight::video {

struct RgbFrames {
  int64_t frames = 0, width = 0, height = 0;
  std::vector<uint8_t> pixels;  // frame after frame, rows top-down, RGBRGB...

  size_t frame_bytes() const { return static_cast<size_t>(width * height * 3); }
  uint8_t* frame(int64_t f) { return pixels.data() + static_cast<size_t>(f) * frame_bytes(); }
  const uint8_t* frame(int64_t f) const {
    return pixels.data() + static_cast<size_t>(f) * frame_bytes();
  }
};

// Largest width or height accepted (every format here is limited to less than this).
constexpr int64_t kMaxFrameSide = 1 << 15;

// Validates a [3, F, H, W] host tensor and maps [-1, 1] to 0..255:
// byte = round((clamp(v, -1, 1) + 1) * 127.5). NaN is an Error. Messages do not name a
// file; the caller adds it.
RgbFrames rgb_from_tensor(const Tensor& video);

// [3, F, H, W] fp32 with value byte / 127.5 - 1.
Tensor tensor_from_rgb(const RgbFrames& rgb);

}  // namespace raylight::video
