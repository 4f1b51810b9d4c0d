// Pointwise activations, written with the same formulas PyTorch documents
// (GELU tanh: 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3)))), evaluated in double.
#include <cmath>
#include <functional>

#include "backend/cpu/cpu_kernels.h"
#include "core/error.h"
#include "core/parallel_for.h"

namespace raylight::cpu {
namespace {

template <typename F>
Tensor map(const Tensor& x, F f) {
  Tensor y = Tensor::empty(x.shape());
  const float* xp = x.f32();
  float* yp = y.f32();
  parallel_for(x.numel(), 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) yp[i] = static_cast<float>(f(static_cast<double>(xp[i])));
  });
  return y;
}

}  // namespace

Tensor gelu_tanh(const Tensor& x) {
  return map(x, [](double v) {
    constexpr double k = 0.7978845608028654;  // sqrt(2/pi)
    return 0.5 * v * (1.0 + std::tanh(k * (v + 0.044715 * v * v * v)));
  });
}

Tensor gelu_erf(const Tensor& x) {
  return map(x, [](double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); });
}

Tensor silu(const Tensor& x) {
  return map(x, [](double v) { return v / (1.0 + std::exp(-v)); });
}

Tensor add(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape())
    fail("add: shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()), " differ");
  Tensor y = Tensor::empty(a.shape());
  const float *ap = a.f32(), *bp = b.f32();
  float* yp = y.f32();
  parallel_for(a.numel(), 4096, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) yp[i] = ap[i] + bp[i];
  });
  return y;
}

}  // namespace raylight::cpu
