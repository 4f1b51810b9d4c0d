// The lse fp8 attention returns: that of the true scores S = q k^T / sqrt(D), as bf16
// attention returns it. Smoothing K (fp8_quantise.h) subtracts the mean over the call's valid
// keys, which shifts every score of a row by q . mean_k / sqrt(D): the softmax rows do not
// see it, but the kernels' lse (cuDNN's stats, the chunk merge's) carries it. Ring attention
// merges key blocks by their lse and each block has its own mean, so the shift is added back
// after the attention kernel has run, once per call, in its own small kernel.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace raylight::cuda {

using bf16 = __nv_bfloat16;

// lse[h, i] += q[i, h, :] . mean[h, :] / sqrt(D) for i < Lq, h < H, where mean = k_sum * (1 / n)
// (1 / n rounded on the host, as the quantisation takes the mean) rotated back per head when
// rotated (k_sum then holds column sums of H S k / sqrt(D), backend/fp8_rotation.h; the
// rotation is orthogonal, so mean_k = S H mean / sqrt(D)). fp32 from the bf16 q.
// q [Lq, H * D] (8-byte aligned), k_sum [H * D], lse [H, Lq]; D a multiple of 4 up to 256
// (fp8 attention's are multiples of 16); n >= 1.
void fp8_lse_add_k_mean(const bf16* q, int64_t Lq, int64_t H, int64_t D, const float* k_sum, int64_t n, bool rotated,
                        float* lse, cudaStream_t s);

}  // namespace raylight::cuda
