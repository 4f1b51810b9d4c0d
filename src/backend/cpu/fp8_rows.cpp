// Rows held as fp8 codes, dequantised on the host: the reference for every backend's
// dequantise and linear_fp8_rows.
#include "backend/cpu/cpu_kernels.h"
#include "core/dtype.h"

namespace raylight::cpu {

Tensor dequantise(const Fp8Rows& x) {
  const int64_t rows = x.rows(), cols = x.cols();
  const uint8_t* c = x.codes.data<uint8_t>();
  const double s = x.scale.f32()[0];
  const float* off = x.offset.defined() ? x.offset.f32() : nullptr;
  Tensor y = Tensor::empty({rows, cols});
  float* p = y.f32();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t i = r * cols + j;
      p[i] = static_cast<float>(double(e4m3_to_f32(c[i])) * s + (off ? double(off[j]) : 0.0));
    }
  return y;
}

}  // namespace raylight::cpu
