#include "models/clip/clip_image_preprocess.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "models/common/bicubic_resize.h"

namespace raylight {
namespace {

constexpr int64_t kMaxSide = 1 << 15;
constexpr std::array<double, 3> kMean{0.48145466, 0.4578275, 0.40821073};
constexpr std::array<double, 3> kStd{0.26862954, 0.26130258, 0.27577711};

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
  Tensor out = bicubic_resize(image, size, size);
  float* o = out.f32();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < size * size; ++i) {
      float& v = o[c * size * size + i];
      v = static_cast<float>(((static_cast<double>(v) * 0.5 + 0.5) - kMean[c]) / kStd[c]);
    }
  return out;
}

}  // namespace raylight
