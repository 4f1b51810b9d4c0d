// Layout and merge kernels used by sequence-parallel attention.
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_kernels.h"
#include "core/parallel_for.h"

namespace raylight::cpu {

Tensor swap_leading(const Tensor& x) {
  const int64_t a = x.dim(0), b = x.dim(1), c = (a * b) == 0 ? 0 : x.numel() / (a * b);
  Shape out_shape = x.shape();
  std::swap(out_shape[0], out_shape[1]);
  Tensor y = Tensor::empty(out_shape);
  const float* xp = x.f32();
  float* yp = y.f32();
  parallel_for(a * b, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t i = r / b, j = r % b;
      std::memcpy(yp + (j * a + i) * c, xp + (i * b + j) * c, c * sizeof(float));
    }
  });
  return y;
}

void merge_attention(Tensor& out, Tensor& lse, const Tensor& part, const Tensor& part_lse) {
  const int64_t L = out.dim(0), H = out.dim(1), D = out.dim(2);
  float *o = out.f32(), *l = lse.f32();
  const float *p = part.f32(), *pl = part_lse.f32();
  parallel_for(L * H, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t i = r / H, h = r % H;
      const double la = l[h * L + i], lb = pl[h * L + i];
      const double m = std::max(la, lb);
      const double wa = std::exp(la - m), wb = std::exp(lb - m), sum = wa + wb;
      float* orow = o + (i * H + h) * D;
      const float* prow = p + (i * H + h) * D;
      for (int64_t d = 0; d < D; ++d)
        orow[d] = static_cast<float>((wa * orow[d] + wb * prow[d]) / sum);
      l[h * L + i] = static_cast<float>(m + std::log(sum));
    }
  });
}

}  // namespace raylight::cpu
