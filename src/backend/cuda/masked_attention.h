// Attention for the text encoders' masks: causal (CLIP, Llama, Qwen2.5-VL), key padding,
// and grouped-query heads (Qwen2.5-VL 28 query / 4 key-value heads, Llama-3 32 / 8). Their
// sequences are short (hundreds of tokens), so, like biased_attention.h, each (query, head)
// row keeps its whole score row in shared memory: simple and plainly correct. Also the
// head repetition that lets the fused kernels serve grouped-query attention without a mask.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace raylight::cuda {

// out[i, h, :] = softmax_j(q[i,h,:].k[j,h/g,:] / sqrt(D)) v[j, h/g, :] over keys
// j < k_valid (and j <= i when causal), g = Hq / Hkv; lse (nullable) [Hq, Lq] natural log.
// q [Lq, Hq, D], k/v [Lk, Hkv, D] bf16; 1 <= k_valid <= Lk.
void masked_attention(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* out,
                      float* lse, int64_t Lq, int64_t Lk, int64_t Hq, int64_t Hkv, int64_t D, int64_t k_valid,
                      bool causal, cudaStream_t s);
// The most keys masked_attention takes (its score row must fit in shared memory).
constexpr int64_t kMaskedAttentionMaxKeys = 8192;

// y [L, Hkv * group, D]: each head of x [L, Hkv, D] repeated `group` times in a row.
void repeat_heads(const __nv_bfloat16* x, __nv_bfloat16* y, int64_t L, int64_t Hkv, int64_t group, int64_t D,
                  cudaStream_t s);

}  // namespace raylight::cuda
