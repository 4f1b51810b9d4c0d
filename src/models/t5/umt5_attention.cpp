// umT5's relative position buckets and the per-offset bias table that the backend's
// attention_offset_bias consumes.
#include "models/t5/umt5_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/parallel_for.h"

namespace raylight {

int64_t umt5_relative_bucket(int64_t relative_position, int64_t num_buckets, int64_t max_distance) {
  const int64_t half = num_buckets / 2;
  const int64_t exact = half / 2;
  const int64_t base = relative_position > 0 ? half : 0;
  const int64_t n = relative_position < 0 ? -relative_position : relative_position;
  if (n < exact) return base + n;
  // torch: max_exact + long(log(float(n) / max_exact) / log(max_distance / max_exact) *
  // (num_buckets - max_exact)), each step rounded to float32, truncated toward zero.
  const float ratio = static_cast<float>(n) / static_cast<float>(exact);
  const float span = static_cast<float>(std::log(static_cast<double>(max_distance) / exact));
  const float scaled = std::log(ratio) / span * static_cast<float>(half - exact);
  return base + std::min(exact + static_cast<int64_t>(scaled), half - 1);
}

Tensor umt5_position_bias(const Tensor& table_in, int64_t length, int64_t max_distance) {
  const Tensor table = table_in.to_f32();
  if (table.ndim() != 2)
    fail("relative attention bias must be [buckets, heads], got ", shape_str(table.shape()));
  const int64_t buckets = table.dim(0), heads = table.dim(1), offsets = 2 * length - 1;
  Tensor out = Tensor::empty({heads, std::max<int64_t>(offsets, 0)});
  const float* t = table.f32();
  float* o = out.f32();
  for (int64_t r = -(length - 1); r <= length - 1; ++r) {
    const int64_t b = umt5_relative_bucket(r, buckets, max_distance);
    for (int64_t h = 0; h < heads; ++h) o[h * offsets + r + length - 1] = t[b * heads + h];
  }
  return out;
}

}  // namespace raylight
