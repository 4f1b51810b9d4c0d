// Rows held as fp8 codes (backend/fp8_rows.h) on the CUDA backend. With an fp8 weight the
// product runs on the codes as they are: x = codes * s + offset, so
//   y = x W^T + b = s * (codes W^T) + (b + W offset),
// one fp8 GEMM with s as the input's device scale and a bias made by a small product of W
// against the offset (on the device, no host round trip). The codes are never widened to
// bf16 and never quantised a second time. A bf16 weight (or a shape the fp8 GEMM refuses)
// gets the bf16 values and the usual product.
#include <cstdint>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp8_rows_kernels.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/ops.h"

namespace raylight::cuda::op {
namespace {

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The rows' scale where cuBLASLt can read it: it refuses every fp8 algorithm when a scale
// pointer is not 16-byte aligned (see ops_matmul.cpp's Fp8Input), so a misaligned one is
// copied (stream-ordered, no host round trip).
Tensor aligned_scale(Context& ctx, const Tensor& scale) {
  if (aligned16(scale.raw())) return scale;
  Tensor s = ctx.alloc({4}, DType::F32);
  RL_CUDA(cudaMemcpyAsync(s.raw(), scale.raw(), sizeof(float), cudaMemcpyDeviceToDevice, ctx.stream));
  return s;
}

}  // namespace

Tensor dequantise(Context& ctx, const Fp8Rows& x) {
  Context::Scope s(ctx, kOther, 0, "dequantise");
  Tensor y = ctx.alloc(x.codes.shape(), DType::BF16);
  fp8_rows_to_bf16(static_cast<const uint8_t*>(x.codes.raw()), x.rows(), x.cols(), x.scale.data<float>(),
                   x.offset.defined() ? x.offset.data<float>() : nullptr, bp(y), ctx.stream);
  return y;
}

Tensor linear_fp8_rows(Context& ctx, const Fp8Rows& x, const Tensor& w, const Tensor& b) {
  const int64_t M = x.rows(), K = x.cols(), N = w.dim(0);
  if (w.dtype() == DType::F8E4M3 && ctx.opt.fp8_gemm && K % 16 == 0 && N % 16 == 0) {
    const Tensor scale = aligned_scale(ctx, x.scale);
    Tensor bias = b;
    if (x.offset.defined()) {
      Context::Scope s(ctx, kMatmul, 2.0 * N * K, "linear_fp8_rows offset");
      bias = ctx.alloc({N}, DType::BF16);
      e4m3_bias_gemv(static_cast<const uint8_t*>(w.raw()), w.scale(), x.offset.data<float>(),
                     b.defined() ? bp(b) : nullptr, bp(bias), N, K, ctx.stream);
    }
    Context::Scope s(ctx, kMatmul, 2.0 * M * N * K, "linear_fp8_rows");
    Tensor y = ctx.alloc({M, N}, DType::BF16);
    if (ctx.gemm->run(x.codes.raw(), DType::F8E4M3, scale.data<float>(), w.raw(), DType::F8E4M3, w.scale(),
                      bias.defined() ? bp(bias) : nullptr, y.raw(), M, N, K, Epilogue::None))
      return y;
  }
  return linear(ctx, dequantise(ctx, x), w, b, {});
}

}  // namespace raylight::cuda::op
