// Row norms and modulation. Statistics are accumulated in double: these are the reference
// values CUDA kernels are compared with, so they should carry no avoidable rounding.
#include <cmath>

#include "backend/cpu/cpu_kernels.h"
#include "core/parallel_for.h"

namespace raylight::cpu {
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  const int64_t D = x.dim(-1), M = x.numel() / D;
  Tensor y = Tensor::empty(x.shape());
  const float* xp = x.f32();
  float* yp = y.f32();
  const float* w = weight.defined() ? weight.f32() : nullptr;
  const float* b = bias.defined() ? bias.f32() : nullptr;
  parallel_for(M, 16, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      const float* r = xp + m * D;
      double mean = 0, var = 0;
      for (int64_t i = 0; i < D; ++i) mean += r[i];
      mean /= D;
      for (int64_t i = 0; i < D; ++i) var += (r[i] - mean) * (r[i] - mean);
      var /= D;
      const double inv = 1.0 / std::sqrt(var + eps);
      float* o = yp + m * D;
      for (int64_t i = 0; i < D; ++i) {
        double v = (r[i] - mean) * inv;
        if (w) v *= w[i];
        if (b) v += b[i];
        o[i] = static_cast<float>(v);
      }
    }
  });
  return y;
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) {
  const int64_t D = x.dim(-1), M = x.numel() / D;
  Tensor y = Tensor::empty(x.shape());
  const float* xp = x.f32();
  float* yp = y.f32();
  const float* w = weight.defined() ? weight.f32() : nullptr;
  parallel_for(M, 16, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      const float* r = xp + m * D;
      double ss = 0;
      for (int64_t i = 0; i < D; ++i) ss += static_cast<double>(r[i]) * r[i];
      const double inv = 1.0 / std::sqrt(ss / D + eps);
      float* o = yp + m * D;
      for (int64_t i = 0; i < D; ++i) o[i] = static_cast<float>(r[i] * inv * (w ? w[i] : 1.0f));
    }
  });
  return y;
}

Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale) {
  const int64_t D = x.dim(-1), M = x.numel() / D;
  Tensor y = Tensor::empty(x.shape());
  const float *xp = x.f32(), *sh = shift.f32(), *sc = scale.f32();
  float* yp = y.f32();
  parallel_for(M, 64, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m)
      for (int64_t i = 0; i < D; ++i) yp[m * D + i] = xp[m * D + i] * (1.0f + sc[i]) + sh[i];
  });
  return y;
}

void add_gated(Tensor& x, const Tensor& y, const Tensor& gate) {
  const int64_t D = x.dim(-1), M = x.numel() / D;
  float* xp = x.f32();
  const float* yp = y.f32();
  const float* g = gate.defined() ? gate.f32() : nullptr;
  parallel_for(M, 64, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m)
      for (int64_t i = 0; i < D; ++i) xp[m * D + i] += yp[m * D + i] * (g ? g[i] : 1.0f);
  });
}

Tensor absmax(const Tensor& x) {
  const float* p = x.f32();
  float m = 0.0f;
  for (int64_t i = 0; i < x.numel(); ++i) m = std::fmax(m, std::fabs(p[i]));  // fmax skips NaN, as fmaxf does
  Tensor out = Tensor::empty({1});
  out.f32()[0] = m;
  return out;
}

}  // namespace raylight::cpu
