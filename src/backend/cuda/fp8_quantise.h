// The quantisation in front of fp8 attention: per-tensor e4m3 scales computed on the device
// (amax, then scale = 448 / amax), so a call needs no host round trip. K and V are smoothed
// first: the mean over the valid keys of each (head, channel) is subtracted. For K that
// leaves every softmax row unchanged (q . mean is one constant per row); for V the mean is
// added back to the output (rows of P sum to 1), so the fp8 product and fp8 output only
// carry what varies (SageAttention's smoothing). The CPU emulation (backend/cpu/attention_fp8)
// does the same arithmetic.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace raylight::cuda {

using bf16 = __nv_bfloat16;

// P's fp8 scale in the second product (P <= 1 maps onto e4m3's largest finite value).
constexpr float kFp8PScale = 448.0f;

// sum[c] = sum over rows [0, n) of x [rows, C] (sum zeroed here). C % 8 == 0.
void column_sums(const bf16* x, int64_t n, int64_t C, float* sum, cudaStream_t s);
// *amax = max |x[r, c] - mean[c]| over rows [0, n), mean = sum / n (sum may be null: 0).
// amax is zeroed here. Non-finite values make amax non-finite (the scale then falls to 1).
void absmax_centred(const bf16* x, int64_t n, int64_t C, const float* sum, float* amax, cudaStream_t s);
// y = e4m3(clamp((x - mean) * scale)) over all rows, scale = 448 / amax (1 when amax is 0 or
// not finite); descale[0] = 1 / scale, and scale_out[0] = scale when scale_out is given.
void quantise_centred(const bf16* x, int64_t rows, int64_t n, int64_t C, const float* sum, const float* amax,
                      uint8_t* y, float* descale, float* scale_out, cudaStream_t s);
// y[i] = bf16(e4m3 x[i] * descale[0] + mean[i % C]), mean = sum / n (sum may be null: 0).
void fp8_to_bf16(const uint8_t* x, int64_t count, const float* descale, int64_t C, const float* sum, int64_t n,
                 bf16* y, cudaStream_t s);
// y[i] += sum[i % C] / n in place (V's mean added back to a bf16 output).
void add_column_mean(bf16* y, int64_t count, int64_t C, const float* sum, int64_t n, cudaStream_t s);

}  // namespace raylight::cuda
