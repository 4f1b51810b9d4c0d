// Pointwise activations, written with the same formulas PyTorch documents
// (GELU tanh: 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3))); quick GELU, CLIP's:
// x sigmoid(1.702x); SwiGLU: silu(gate) * up), evaluated in double.
#include <cmath>
#include <cstring>
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

Tensor quick_gelu(const Tensor& x) {
  return map(x, [](double v) { return v / (1.0 + std::exp(-1.702 * v)); });
}

Tensor swiglu(const Tensor& gate, const Tensor& up) {
  Tensor y = Tensor::empty(gate.shape());
  const float *gp = gate.f32(), *up_ = up.f32();
  float* yp = y.f32();
  parallel_for(gate.numel(), 4096, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      const double g = gp[i];
      yp[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up_[i]);
    }
  });
  return y;
}

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor y = Tensor::empty(a.shape());
  const float *ap = a.f32(), *bp = b.f32();
  float* yp = y.f32();
  parallel_for(a.numel(), 4096, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) yp[i] = ap[i] + bp[i];
  });
  return y;
}

Tensor dequantize(const Tensor& stored, float scale) {
  Tensor out = Tensor::empty(stored.shape());
  if (!stored.is_contiguous()) fail("dequantize: stored tensor is not contiguous");
  convert_to_f32(stored.dtype(), stored.raw(), out.f32(), static_cast<size_t>(stored.numel()));
  if (scale != 1.0f) {
    float* p = out.f32();
    parallel_for(out.numel(), 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) p[i] *= scale;
    });
  }
  return out;
}

Tensor concat_rows(const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::empty({a.dim(0) + b.dim(0), a.dim(1)});
  if (a.numel()) std::memcpy(out.f32(), a.f32(), a.nbytes());
  if (b.numel()) std::memcpy(out.f32() + a.numel(), b.f32(), b.nbytes());
  return out;
}

Tensor concat_columns(const Tensor& a, const Tensor& b) {
  const int64_t rows = a.dim(0), na = a.dim(1), nb = b.dim(1);
  Tensor out = Tensor::empty({rows, na + nb});
  for (int64_t r = 0; r < rows; ++r) {
    if (na) std::memcpy(out.f32() + r * (na + nb), a.f32() + r * na, na * sizeof(float));
    if (nb) std::memcpy(out.f32() + r * (na + nb) + na, b.f32() + r * nb, nb * sizeof(float));
  }
  return out;
}

}  // namespace raylight::cpu
