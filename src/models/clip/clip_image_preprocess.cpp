#include "models/clip/clip_image_preprocess.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace raylight {
namespace {

constexpr double kA = -0.75;
constexpr int64_t kMaxSide = 1 << 15;
constexpr std::array<double, 3> kMean{0.48145466, 0.4578275, 0.40821073};
constexpr std::array<double, 3> kStd{0.26862954, 0.26130258, 0.27577711};

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

}  // namespace

Tensor clip_preprocess_image(const Tensor& image, int64_t size) {
  if (image.dtype() != DType::F32 || image.shape().size() != 3 || image.dim(0) != 3)
    fail("CLIP image must be fp32 [3, H, W]; got ", dtype_name(image.dtype()), " ", shape_str(image.shape()));
  const int64_t H = image.dim(1), W = image.dim(2);
  if (H < 1 || W < 1 || H > kMaxSide || W > kMaxSide)
    fail("CLIP image is ", W, "x", H, "; sides must be 1 to ", kMaxSide);
  if (size < 1 || size > kMaxSide) fail("CLIP image size ", size, " is out of range");
  const Tensor src = image.to_f32();  // contiguous
  const float* p = src.f32();
  for (int64_t i = 0; i < src.numel(); ++i)
    if (!std::isfinite(p[i])) fail("CLIP image holds a non-finite value at element ", i);
  const Taps ty = taps(H, size), tx = taps(W, size);
  Tensor out = Tensor::empty({3, size, size});
  float* o = out.f32();
  auto clamp = [](int64_t v, int64_t n) { return std::min(std::max<int64_t>(v, 0), n - 1); };
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < size; ++y)
      for (int64_t x = 0; x < size; ++x) {
        double acc = 0;
        for (int j = 0; j < 4; ++j) {
          const float* row = p + (c * H + clamp(ty.first[y] + j, H)) * W;
          double r = 0;
          for (int i = 0; i < 4; ++i) r += tx.weight[x][i] * row[clamp(tx.first[x] + i, W)];
          acc += ty.weight[y][j] * r;
        }
        o[(c * size + y) * size + x] = static_cast<float>(((acc * 0.5 + 0.5) - kMean[c]) / kStd[c]);
      }
  return out;
}

}  // namespace raylight
