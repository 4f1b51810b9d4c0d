#include "backend/cuda/fp8_quantise.h"

#include <cuda_fp8.h>

#include <algorithm>

#include "backend/cuda/cuda_check.h"

namespace raylight::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void column_sums_kernel(const bf16* __restrict__ x, int64_t n, int64_t C, int64_t rows_per_block,
                                   float* __restrict__ sum) {
  const int64_t c = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (c >= C) return;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_block, r1 = min(n, r0 + rows_per_block);
  float acc = 0;
  for (int64_t r = r0; r < r1; ++r) acc += __bfloat162float(x[r * C + c]);
  atomicAdd(sum + c, acc);
}

// Non-negative floats order like their bit patterns, so atomicMax on the bits is a float max.
__global__ void absmax_kernel(const bf16* __restrict__ x, int64_t count8, int64_t C, const float* __restrict__ sum,
                              float inv_n, unsigned* __restrict__ amax) {
  float m = 0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count8; i += int64_t(gridDim.x) * blockDim.x) {
    const uint4 raw = reinterpret_cast<const uint4*>(x)[i];
    const bf16* v = reinterpret_cast<const bf16*>(&raw);
    const int64_t c0 = (i * 8) % C;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float y = __bfloat162float(v[j]) - (sum ? sum[c0 + j] * inv_n : 0.0f);
      m = isfinite(y) ? fmaxf(m, fabsf(y)) : __int_as_float(0x7f800000);
    }
  }
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  __shared__ float warp_max[kThreads / 32];
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x / 32] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) m = fmaxf(m, warp_max[w]);
    atomicMax(amax, __float_as_uint(m));
  }
}

__device__ __forceinline__ float scale_of(float amax) {
  return (amax > 0.0f && isfinite(amax)) ? 448.0f / amax : 1.0f;
}

__global__ void quantise_kernel(const bf16* __restrict__ x, int64_t count8, int64_t C, const float* __restrict__ sum,
                                float inv_n, const float* __restrict__ amax, uint8_t* __restrict__ y,
                                float* __restrict__ descale, float* __restrict__ scale_out) {
  const float scale = scale_of(*amax);
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    descale[0] = 1.0f / scale;
    if (scale_out) scale_out[0] = scale;
  }
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count8; i += int64_t(gridDim.x) * blockDim.x) {
    const uint4 raw = reinterpret_cast<const uint4*>(x)[i];
    const bf16* v = reinterpret_cast<const bf16*>(&raw);
    const int64_t c0 = (i * 8) % C;
    uint2 out;
    uint8_t* o = reinterpret_cast<uint8_t*>(&out);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float f = (__bfloat162float(v[j]) - (sum ? sum[c0 + j] * inv_n : 0.0f)) * scale;
      o[j] = __nv_cvt_float_to_fp8(f, __NV_SATFINITE, __NV_E4M3);
    }
    reinterpret_cast<uint2*>(y)[i] = out;
  }
}

__global__ void fp8_to_bf16_kernel(const uint8_t* __restrict__ x, int64_t count, const float* __restrict__ descale,
                                   int64_t C, const float* __restrict__ sum, float inv_n, bf16* __restrict__ y) {
  const float d = descale[0];
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    __nv_fp8_e4m3 v;
    v.__x = x[i];
    y[i] = __float2bfloat16(float(v) * d + (sum ? sum[i % C] * inv_n : 0.0f));
  }
}

__global__ void add_column_mean_kernel(bf16* __restrict__ y, int64_t count, int64_t C, const float* __restrict__ sum,
                                       float inv_n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16(__bfloat162float(y[i]) + sum[i % C] * inv_n);
}

unsigned grid_for(int64_t items) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((items + kThreads - 1) / kThreads, 132 * 16)));
}

}  // namespace

void column_sums(const bf16* x, int64_t n, int64_t C, float* sum, cudaStream_t s) {
  RL_CUDA(cudaMemsetAsync(sum, 0, size_t(C) * sizeof(float), s));
  if (n <= 0) return;
  const int64_t col_blocks = (C + kThreads - 1) / kThreads;
  // Enough row chunks to fill the device, each long enough to amortise its atomics.
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>((n + 63) / 64, std::max<int64_t>(1, 1024 / col_blocks)));
  const int64_t per = (n + chunks - 1) / chunks;
  column_sums_kernel<<<dim3(unsigned(col_blocks), unsigned(chunks)), kThreads, 0, s>>>(x, n, C, per, sum);
  RL_CUDA_LAUNCH();
}

void absmax_centred(const bf16* x, int64_t n, int64_t C, const float* sum, float* amax, cudaStream_t s) {
  RL_CUDA(cudaMemsetAsync(amax, 0, sizeof(float), s));
  const int64_t count8 = n * C / 8;
  if (count8 <= 0) return;
  absmax_kernel<<<grid_for(count8), kThreads, 0, s>>>(x, count8, C, sum, n > 0 ? 1.0f / float(n) : 0.0f,
                                                      reinterpret_cast<unsigned*>(amax));
  RL_CUDA_LAUNCH();
}

void quantise_centred(const bf16* x, int64_t rows, int64_t n, int64_t C, const float* sum, const float* amax,
                      uint8_t* y, float* descale, float* scale_out, cudaStream_t s) {
  const int64_t count8 = rows * C / 8;
  quantise_kernel<<<grid_for(std::max<int64_t>(count8, 1)), kThreads, 0, s>>>(
      x, count8, C, sum, n > 0 ? 1.0f / float(n) : 0.0f, amax, y, descale, scale_out);
  RL_CUDA_LAUNCH();
}

void fp8_to_bf16(const uint8_t* x, int64_t count, const float* descale, int64_t C, const float* sum, int64_t n,
                 bf16* y, cudaStream_t s) {
  if (count <= 0) return;
  fp8_to_bf16_kernel<<<grid_for(count), kThreads, 0, s>>>(x, count, descale, C, sum, n > 0 ? 1.0f / float(n) : 0.0f, y);
  RL_CUDA_LAUNCH();
}

void add_column_mean(bf16* y, int64_t count, int64_t C, const float* sum, int64_t n, cudaStream_t s) {
  if (count <= 0 || !sum) return;
  add_column_mean_kernel<<<grid_for(count), kThreads, 0, s>>>(y, count, C, sum, n > 0 ? 1.0f / float(n) : 0.0f);
  RL_CUDA_LAUNCH();
}

}  // namespace raylight::cuda
