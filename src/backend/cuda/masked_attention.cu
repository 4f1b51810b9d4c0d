#include "backend/cuda/masked_attention.h"

#include <algorithm>
#include <cmath>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_math.cuh"

namespace raylight::cuda {
namespace {

using bf16 = __nv_bfloat16;

// One block per (query, head). Scores: one warp per key, lanes over the head dimension; then
// the block's max and sum; then threads over the head dimension accumulate p * v. Keys past
// the row's last visible key are never read, so no score is -inf and no row is empty
// (causal rows see key 0, and k_valid >= 1).
__global__ void masked_attention_kernel(const bf16* __restrict__ q, const bf16* __restrict__ k,
                                        const bf16* __restrict__ v, bf16* __restrict__ out, float* __restrict__ lse,
                                        int Lq, int Hq, int Hkv, int D, int k_valid, bool causal, float scale) {
  extern __shared__ float shared[];
  float* qs = shared;      // [D]
  float* scores = qs + D;  // [keys]
  __shared__ float scratch[32];
  const int i = blockIdx.x, h = blockIdx.y, hk = h / (Hq / Hkv);
  const int keys = causal ? min(k_valid, i + 1) : k_valid;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int64_t row = (int64_t(i) * Hq + h) * D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) qs[d] = __bfloat162float(q[row + d]);
  __syncthreads();
  for (int j = warp; j < keys; j += warps) {
    const bf16* kr = k + (int64_t(j) * Hkv + hk) * D;
    float s = 0.f;
    for (int d = lane; d < D; d += 32) s += qs[d] * __bfloat162float(kr[d]);
    s = warp_sum(s);
    if (lane == 0) scores[j] = s * scale;
  }
  __syncthreads();
  float m = -INFINITY;
  for (int j = threadIdx.x; j < keys; j += blockDim.x) m = fmaxf(m, scores[j]);
  m = block_max(m, scratch);
  float sum = 0.f;
  for (int j = threadIdx.x; j < keys; j += blockDim.x) {
    const float e = __expf(scores[j] - m);
    scores[j] = e;
    sum += e;
  }
  sum = block_sum(sum, scratch);  // its barriers also publish the exponentials
  const float inv = 1.f / sum;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float acc = 0.f;
    const bf16* vc = v + int64_t(hk) * D + d;
    for (int j = 0; j < keys; ++j) acc += scores[j] * __bfloat162float(vc[int64_t(j) * Hkv * D]);
    out[row + d] = __float2bfloat16(acc * inv);
  }
  if (lse && threadIdx.x == 0) lse[int64_t(h) * Lq + i] = m + logf(sum);
}

__global__ void repeat_heads_kernel(const bf16* __restrict__ x, bf16* __restrict__ y, int64_t L, int64_t Hkv,
                                    int64_t group, int64_t D) {
  const int64_t n = L * Hkv * group * D;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t d = e % D, h = (e / D) % (Hkv * group), l = e / (D * Hkv * group);
    y[e] = x[(l * Hkv + h / group) * D + d];
  }
}

}  // namespace

void masked_attention(const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse, int64_t Lq, int64_t Lk,
                      int64_t Hq, int64_t Hkv, int64_t D, int64_t k_valid, bool causal, cudaStream_t s) {
  if (Lq == 0 || Hq == 0) return;
  if (Lk < 1 || Lk > kMaskedAttentionMaxKeys)
    fail("masked attention: ", Lk, " keys (1 to ", kMaskedAttentionMaxKeys, ")");
  if (k_valid < 1 || k_valid > Lk) fail("masked attention: ", k_valid, " valid keys of ", Lk);
  if (Hkv < 1 || Hq % Hkv != 0) fail("masked attention: ", Hq, " query heads over ", Hkv, " key/value heads");
  if (Lq > 2147483647 || Hq > 65535) fail("masked attention: ", Lq, " queries x ", Hq, " heads exceed the grid");
  const size_t smem = size_t(D + Lk) * sizeof(float);
  if (smem > 200 * 1024) fail("masked attention: head size ", D, " with ", Lk, " keys exceeds shared memory");
  if (smem > 48 * 1024)
    RL_CUDA(cudaFuncSetAttribute(masked_attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  masked_attention_kernel<<<dim3(unsigned(Lq), unsigned(Hq)), 128, smem, s>>>(
      q, k, v, out, lse, int(Lq), int(Hq), int(Hkv), int(D), int(k_valid), causal, scale);
  RL_CUDA_LAUNCH();
}

void repeat_heads(const bf16* x, bf16* y, int64_t L, int64_t Hkv, int64_t group, int64_t D, cudaStream_t s) {
  const int64_t n = L * Hkv * group * D;
  if (n == 0) return;
  repeat_heads_kernel<<<static_cast<unsigned>(std::min<int64_t>((n + 255) / 256, 132 * 32)), 256, 0, s>>>(
      x, y, L, Hkv, group, D);
  RL_CUDA_LAUNCH();
}

}  // namespace raylight::cuda
