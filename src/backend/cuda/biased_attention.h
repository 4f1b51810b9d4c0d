// Attention with an additive bias that depends only on the key-query offset (T5's relative
// position bias), for the text encoder: short sequences (hundreds of tokens), so each
// (query, head) row keeps its whole score row in shared memory.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace raylight::cuda {

// out[i, h, :] = softmax_j(q[i,h,:].k[j,h,:] * scale + bias[h, j - i + Lq - 1]) v[j, h, :];
// q [Lq, H, D], k/v [Lk, H, D] bf16, bias device fp32 [H, Lq + Lk - 1].
void offset_bias_attention(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                           const float* bias, __nv_bfloat16* out, int64_t Lq, int64_t Lk, int64_t H,
                           int64_t D, float scale, cudaStream_t s);
// The most keys offset_bias_attention takes (its score row must fit in shared memory).
constexpr int64_t kOffsetBiasMaxKeys = 8192;

}  // namespace raylight::cuda
