// Kernels for rows held as fp8 codes (backend/fp8_rows.h): their bf16 values, the column
// mean that becomes their offset, and the small product that folds the offset into a
// bias (b + W offset) so an fp8 GEMM can run on the codes themselves.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace raylight::cuda {

using bf16 = __nv_bfloat16;

// y[r, c] = bf16(e4m3 codes[r, c] * scale[0] + offset[c]) (offset may be null: 0), any shape.
void fp8_rows_to_bf16(const uint8_t* codes, int64_t rows, int64_t cols, const float* scale, const float* offset,
                      bf16* y, cudaStream_t s);
// mean[c] = sum[c] * (1 / n) (1 / n rounded on the host, as fp8_to_bf16 takes v's mean); n >= 1.
void column_mean(const float* sum, int64_t n, int64_t C, float* mean, cudaStream_t s);
// y[n] = bf16(bias[n] + w_scale * sum_k e4m3 w[n, k] * x[k]) for n < N (bias may be null):
// one warp per output, fp32 sums. w [N, K] e4m3 codes, x fp32 [K].
void e4m3_bias_gemv(const uint8_t* w, float w_scale, const float* x, const bf16* bias, bf16* y, int64_t N, int64_t K,
                    cudaStream_t s);

}  // namespace raylight::cuda
