// Tensor <-> 8-bit RGB conversion with the input checks every video writer needs.
#include "io/video/rgb_frames.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace raylight::video {

RgbFrames rgb_from_tensor(const Tensor& video) {
  if (!video.defined()) fail("video tensor is undefined");
  if (video.device() != Device::CPU)
    fail("video tensor must be in host memory (copy it off the device first)");
  if (video.ndim() != 4)
    fail("video must be a [3, F, H, W] tensor, got shape ", shape_str(video.shape()));
  if (video.dim(0) != 3)
    fail("video must have 3 (RGB) channels in dim 0 of [3, F, H, W], got shape ",
         shape_str(video.shape()));
  if (video.numel() == 0) fail("video is empty: shape ", shape_str(video.shape()));
  if (video.dim(2) > kMaxFrameSide || video.dim(3) > kMaxFrameSide)
    fail("video frames of ", video.dim(3), "x", video.dim(2), " exceed the ", kMaxFrameSide,
         " pixel limit per side");

  const Tensor t = video.to_f32();  // contiguous fp32 (the tensor itself when it is one)
  RgbFrames out;
  out.frames = t.dim(1);
  out.height = t.dim(2);
  out.width = t.dim(3);
  out.pixels.resize(static_cast<size_t>(out.frames) * out.frame_bytes());
  const float* src = t.f32();
  const int64_t F = out.frames, H = out.height, W = out.width, plane = F * H * W;
  for (int64_t c = 0; c < 3; ++c) {
    for (int64_t i = 0; i < plane; ++i) {
      const float v = src[c * plane + i];
      if (std::isnan(v)) {
        const int64_t f = i / (H * W), y = i / W % H, x = i % W;
        fail("video has NaN at [channel ", c, ", frame ", f, ", y ", y, ", x ", x, "]");
      }
      const double u = (static_cast<double>(std::clamp(v, -1.0f, 1.0f)) + 1.0) * 127.5;
      out.pixels[static_cast<size_t>(i) * 3 + c] = static_cast<uint8_t>(std::floor(u + 0.5));
    }
  }
  return out;
}

Tensor tensor_from_rgb(const RgbFrames& rgb) {
  const int64_t F = rgb.frames, H = rgb.height, W = rgb.width, plane = F * H * W;
  Tensor t = Tensor::empty({3, F, H, W});
  float* dst = t.f32();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < plane; ++i)
      dst[c * plane + i] =
          static_cast<float>(rgb.pixels[static_cast<size_t>(i) * 3 + c] / 127.5 - 1.0);
  return t;
}

}  // namespace raylight::video
