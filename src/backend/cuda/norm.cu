// Row norms with their neighbours fused: LayerNorm or RMSNorm, the optional affine weight
// and bias, and the optional DiT modulation x * (1 + scale) + shift, in one pass over the
// row. One block per row; the row is read once from global memory into shared memory as
// fp32, so mean and variance are two exact passes (no E[x^2] - E[x]^2 cancellation).
#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/kernels.h"

namespace raylight::cuda {
namespace {

template <int V>
__global__ void row_norm_kernel(const bf16* __restrict__ x, const bf16* __restrict__ w,
                                const bf16* __restrict__ b, const bf16* __restrict__ shift,
                                const bf16* __restrict__ scale, bf16* __restrict__ y, int cols,
                                float eps, bool rms) {
  extern __shared__ float row[];
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const bf16* xr = x + r * cols;
  float sum = 0.f;
  for (int c = threadIdx.x * V; c < cols; c += blockDim.x * V) {
    float a[V];
    load_v<V>(xr + c, a);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      row[c + j] = a[j];
      sum += a[j];
    }
  }
  const float mean = rms ? 0.f : block_sum(sum, scratch) / cols;
  float ss = 0.f;
  for (int c = threadIdx.x * V; c < cols; c += blockDim.x * V)
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const float d = row[c + j] - mean;
      ss += d * d;
    }
  const float inv = rsqrtf(block_sum(ss, scratch) / cols + eps);
  bf16* yr = y + r * cols;
  for (int c = threadIdx.x * V; c < cols; c += blockDim.x * V) {
    float o[V], t[V];
#pragma unroll
    for (int j = 0; j < V; ++j) o[j] = (row[c + j] - mean) * inv;
    if (w) {
      load_v<V>(w + c, t);
#pragma unroll
      for (int j = 0; j < V; ++j) o[j] *= t[j];
    }
    if (b) {
      load_v<V>(b + c, t);
#pragma unroll
      for (int j = 0; j < V; ++j) o[j] += t[j];
    }
    if (scale) {
      load_v<V>(scale + c, t);
#pragma unroll
      for (int j = 0; j < V; ++j) o[j] *= 1.f + t[j];
    }
    if (shift) {
      load_v<V>(shift + c, t);
#pragma unroll
      for (int j = 0; j < V; ++j) o[j] += t[j];
    }
    store_v<V>(yr + c, o);
  }
}

bool al16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void row_norm(const bf16* x, const bf16* weight, const bf16* bias, const bf16* shift,
              const bf16* scale, bf16* y, int64_t rows, int64_t cols, float eps, bool rms,
              cudaStream_t s) {
  if (rows == 0) return;
  const bool vec = cols % 8 == 0 && al16(x) && al16(y) && (!weight || al16(weight)) &&
                   (!bias || al16(bias)) && (!shift || al16(shift)) && (!scale || al16(scale));
  const int per = vec ? 8 : 1;
  const int threads = static_cast<int>(std::clamp<int64_t>((cols / per + 31) / 32 * 32, 32, 256));
  const size_t smem = static_cast<size_t>(cols) * sizeof(float);
  if (smem > 48 * 1024) {
    static bool raised = false;
    if (!raised) {
      RL_CUDA(cudaFuncSetAttribute(row_norm_kernel<8>, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
      RL_CUDA(cudaFuncSetAttribute(row_norm_kernel<1>, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
      raised = true;
    }
  }
  if (vec) row_norm_kernel<8><<<rows, threads, smem, s>>>(x, weight, bias, shift, scale, y, cols, eps, rms);
  else row_norm_kernel<1><<<rows, threads, smem, s>>>(x, weight, bias, shift, scale, y, cols, eps, rms);
  RL_CUDA_LAUNCH();
}

}  // namespace raylight::cuda
