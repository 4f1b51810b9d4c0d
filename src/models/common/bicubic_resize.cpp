#include "models/common/bicubic_resize.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace raylight {
namespace {

constexpr double kA = -0.75;
constexpr int64_t kMaxSide = 1 << 15;

// For each output index: the first of 4 source indices (unclamped) and their weights.
struct Taps {
  std::vector<int64_t> first;
  std::vector<std::array<double, 4>> weight;
};

Taps taps(int64_t in, int64_t out) {
  Taps t;
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  for (int64_t i = 0; i < out; ++i) {
    const double real = scale * (static_cast<double>(i) + 0.5) - 0.5;
    const double f = std::floor(real);
    const double x = real - f;
    auto near = [](double d) { return ((kA + 2) * d - (kA + 3)) * d * d + 1; };          // |d| <= 1
    auto far = [](double d) { return ((kA * d - 5 * kA) * d + 8 * kA) * d - 4 * kA; };  // 1 < |d| < 2
    t.first.push_back(static_cast<int64_t>(f) - 1);
    t.weight.push_back({far(x + 1), near(x), near(1 - x), far(2 - x)});
  }
  return t;
}

void check_picture(const Tensor& image, const char* what) {
  if (image.dtype() != DType::F32 || image.shape().size() != 3 || image.dim(0) < 1)
    fail(what, " must be fp32 [C, H, W]; got ", dtype_name(image.dtype()), " ", shape_str(image.shape()));
  if (image.dim(1) < 1 || image.dim(2) < 1 || image.dim(1) > kMaxSide || image.dim(2) > kMaxSide)
    fail(what, " is ", image.dim(2), "x", image.dim(1), "; sides must be 1 to ", kMaxSide);
}

}  // namespace

Tensor bicubic_resize(const Tensor& image, int64_t out_h, int64_t out_w) {
  check_picture(image, "a picture to resize");
  if (out_h < 1 || out_w < 1 || out_h > kMaxSide || out_w > kMaxSide)
    fail("cannot resize a picture to ", out_w, "x", out_h, "; sides must be 1 to ", kMaxSide);
  const int64_t C = image.dim(0), H = image.dim(1), W = image.dim(2);
  const Tensor src = image.to_f32();  // contiguous
  const float* p = src.f32();
  for (int64_t i = 0; i < src.numel(); ++i)
    if (!std::isfinite(p[i])) fail("a picture to resize holds a non-finite value at element ", i);
  const Taps ty = taps(H, out_h), tx = taps(W, out_w);
  Tensor out = Tensor::empty({C, out_h, out_w});
  float* o = out.f32();
  auto clamp = [](int64_t v, int64_t n) { return std::min(std::max<int64_t>(v, 0), n - 1); };
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < out_h; ++y)
      for (int64_t x = 0; x < out_w; ++x) {
        double acc = 0;
        for (int j = 0; j < 4; ++j) {
          const float* row = p + (c * H + clamp(ty.first[y] + j, H)) * W;
          double r = 0;
          for (int i = 0; i < 4; ++i) r += tx.weight[x][i] * row[clamp(tx.first[x] + i, W)];
          acc += ty.weight[y][j] * r;
        }
        o[(c * out_h + y) * out_w + x] = static_cast<float>(acc);
      }
  return out;
}

Tensor center_crop_to_aspect(const Tensor& image, int64_t out_h, int64_t out_w) {
  check_picture(image, "a picture to crop");
  if (out_h < 1 || out_w < 1) fail("cannot crop a picture to the aspect of ", out_w, "x", out_h);
  const int64_t C = image.dim(0), H = image.dim(1), W = image.dim(2);
  const double old_aspect = static_cast<double>(W) / H, new_aspect = static_cast<double>(out_w) / out_h;
  int64_t x = 0, y = 0;
  if (old_aspect > new_aspect) x = std::llround((W - W * (new_aspect / old_aspect)) / 2);
  else if (old_aspect < new_aspect) y = std::llround((H - H * (old_aspect / new_aspect)) / 2);
  const int64_t h = std::max<int64_t>(H - 2 * y, 1), w = std::max<int64_t>(W - 2 * x, 1);
  if (x == 0 && y == 0) return image.to_f32();
  const Tensor src = image.to_f32();
  Tensor out = Tensor::empty({C, h, w});
  for (int64_t c = 0; c < C; ++c)
    for (int64_t r = 0; r < h; ++r)
      std::memcpy(out.f32() + (c * h + r) * w, src.f32() + (c * H + r + y) * W + x, w * sizeof(float));
  return out;
}

}  // namespace raylight
