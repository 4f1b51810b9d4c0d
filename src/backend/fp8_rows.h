// Rows of activations held as fp8 e4m3 codes: value[r, c] = code[r, c] * scale + offset[c].
//
// What fp8 attention writes on Hopper (cuDNN gives e4m3 only there): O's codes scaled like
// the smoothed V, V's descale, and V's column mean as the offset. Handing these to the next
// product as they are (Backend::linear_fp8_rows) skips a bf16 copy of O and a second,
// coarser quantisation of the same values: with fp8 weights, y = W x + b becomes
// scale * (W codes) + (b + W offset), an fp8 product on the codes themselves.
//
// Plain data, no hidden state: the three tensors share their owners like any Tensor, so the
// scale and offset stay alive as long as the codes do. The scale stays on the device (no
// host round trip between attention and the product).
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace raylight {

class Backend;

struct Fp8Rows {
  Tensor codes;   // F8E4M3 [rows, cols], contiguous, on the backend's device
  Tensor scale;   // F32 [1] on the device (CUDA: 16-byte aligned, cuBLASLt reads it as a GEMM scale)
  Tensor offset;  // F32 [cols] on the device, or undefined (no offset)

  // Whether rows are held here (attention filled it), as against a default-constructed one.
  bool held() const { return codes.raw() != nullptr || (codes.ndim() == 2 && codes.numel() == 0); }
  int64_t rows() const { return codes.dim(0); }
  int64_t cols() const { return codes.dim(1); }
};

// Host values -> Fp8Rows on be's device (tests, and where a caller has codes in host memory):
// codes F8E4M3 [rows, cols] (host), scale a finite positive number, offset host fp32 [cols] or
// undefined. Refuses anything else by name.
Fp8Rows upload_fp8_rows(Backend& be, const Tensor& codes, float scale, const Tensor& offset);

}  // namespace raylight
