#include "backend/rope_table.h"

#include <cmath>

#include "core/error.h"

namespace raylight {

RopeAxes wan_rope_axes(int head_dim) {
  if (head_dim % 2 != 0 || head_dim < 6) fail("RoPE needs an even head_dim >= 6, got ", head_dim);
  int sixth = head_dim / 6;
  return {head_dim - 4 * sixth, 2 * sixth, 2 * sixth};
}

Tensor rope_table_3d(int64_t frames, int64_t height, int64_t width, RopeAxes axes,
                     double theta, int64_t first, int64_t count, std::array<int64_t, 3> offset) {
  const int half = (axes.frame + axes.height + axes.width) / 2;
  if (first < 0 || first + count > frames * height * width)
    fail("RoPE table range [", first, ", ", first + count, ") outside a grid of ",
         frames * height * width, " tokens");
  Tensor table = Tensor::empty({count, half, 2});
  float* out = table.f32();
  const int axis_dims[3] = {axes.frame, axes.height, axes.width};
  for (int64_t t = 0; t < count; ++t) {
    int64_t idx = first + t;
    const int64_t pos[3] = {offset[0] + idx / (height * width), offset[1] + (idx / width) % height,
                            offset[2] + idx % width};
    int pair = 0;
    for (int a = 0; a < 3; ++a) {
      for (int k = 0; k < axis_dims[a] / 2; ++k, ++pair) {
        double freq = std::pow(theta, -2.0 * k / axis_dims[a]);
        double angle = static_cast<double>(pos[a]) * freq;
        out[(t * half + pair) * 2 + 0] = static_cast<float>(std::cos(angle));
        out[(t * half + pair) * 2 + 1] = static_cast<float>(std::sin(angle));
      }
    }
  }
  return table;
}

Tensor rope_table_1d(int64_t first, int64_t count, int head_dim, double theta) {
  if (head_dim % 2 != 0 || head_dim < 2) fail("RoPE needs an even head_dim >= 2, got ", head_dim);
  if (first < 0 || count < 0) fail("RoPE table positions [", first, ", ", first + count, ") are negative");
  if (!(theta > 1.0) || !std::isfinite(theta)) fail("RoPE theta ", theta, " must be a finite value above 1");
  const int half = head_dim / 2;
  Tensor table = Tensor::empty({count, half, 2});
  float* out = table.f32();
  for (int64_t t = 0; t < count; ++t)
    for (int i = 0; i < half; ++i) {
      const double angle = static_cast<double>(first + t) * std::pow(theta, -2.0 * i / head_dim);
      out[(t * half + i) * 2 + 0] = static_cast<float>(std::cos(angle));
      out[(t * half + i) * 2 + 1] = static_cast<float>(std::sin(angle));
    }
  return table;
}

}  // namespace raylight
