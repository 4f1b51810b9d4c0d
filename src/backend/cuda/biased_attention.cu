#include "backend/cuda/biased_attention.h"

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_math.cuh"

namespace raylight::cuda {
namespace {

using bf16 = __nv_bfloat16;

// One block per (query, head). Scores: one warp per key, lanes over the head dimension;
// then the block's max and sum; then threads over the head dimension accumulate p * v.
__global__ void offset_bias_attention_kernel(const bf16* __restrict__ q, const bf16* __restrict__ k,
                                             const bf16* __restrict__ v, const float* __restrict__ bias,
                                             bf16* __restrict__ out, int Lq, int Lk, int H, int D, float scale) {
  extern __shared__ float shared[];
  float* qs = shared;         // [D]
  float* scores = qs + D;     // [Lk]
  __shared__ float scratch[32];
  const int i = blockIdx.x, h = blockIdx.y;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int64_t row = (int64_t(i) * H + h) * D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) qs[d] = __bfloat162float(q[row + d]);
  __syncthreads();
  const float* b = bias + int64_t(h) * (Lq + Lk - 1) + (Lq - 1 - i);  // b[j]: key j
  for (int j = warp; j < Lk; j += warps) {
    const bf16* kr = k + (int64_t(j) * H + h) * D;
    float s = 0.f;
    for (int d = lane; d < D; d += 32) s += qs[d] * __bfloat162float(kr[d]);
    s = warp_sum(s);
    if (lane == 0) scores[j] = s * scale + b[j];
  }
  __syncthreads();
  float m = -INFINITY;
  for (int j = threadIdx.x; j < Lk; j += blockDim.x) m = fmaxf(m, scores[j]);
  m = block_max(m, scratch);
  float sum = 0.f;
  for (int j = threadIdx.x; j < Lk; j += blockDim.x) {
    const float e = __expf(scores[j] - m);
    scores[j] = e;
    sum += e;
  }
  sum = block_sum(sum, scratch);  // its barriers also publish the exponentials
  const float inv = 1.f / sum;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float acc = 0.f;
    const bf16* vc = v + int64_t(h) * D + d;
    for (int j = 0; j < Lk; ++j) acc += scores[j] * __bfloat162float(vc[int64_t(j) * H * D]);
    out[row + d] = __float2bfloat16(acc * inv);
  }
}

}  // namespace

void offset_bias_attention(const bf16* q, const bf16* k, const bf16* v, const float* bias, bf16* out,
                           int64_t Lq, int64_t Lk, int64_t H, int64_t D, float scale, cudaStream_t s) {
  if (Lq == 0 || H == 0) return;
  if (Lk < 1 || Lk > kOffsetBiasMaxKeys) fail("offset-biased attention: ", Lk, " keys (1 to ", kOffsetBiasMaxKeys, ")");
  if (Lq > 65535 || H > 65535) fail("offset-biased attention: ", Lq, " queries x ", H, " heads exceed the grid");
  const size_t smem = size_t(D + Lk) * sizeof(float);
  if (smem > 48 * 1024)
    RL_CUDA(cudaFuncSetAttribute(offset_bias_attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  offset_bias_attention_kernel<<<dim3(unsigned(Lq), unsigned(H)), 128, smem, s>>>(q, k, v, bias, out, int(Lq), int(Lk),
                                                                                  int(H), int(D), scale);
  RL_CUDA_LAUNCH();
}

}  // namespace raylight::cuda
