// Rows held as fp8 codes on the device (fp8_rows_kernels.h says what each kernel computes).
// The dequantisation takes fp8_to_bf16's eight-wide path where the shape allows it (O of an
// attention call always does) and one element per thread otherwise. The bias product reads
// a weight row per warp with 16-byte loads: at Wan 14B's 5,120 x 5,120 that is 26 MB, a few
// microseconds, against the ~0.4 ms of the bf16 round trip it replaces.
#include "backend/cuda/fp8_rows_kernels.h"

#include <cuda_fp8.h>

#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp8_quantise.h"
#include "core/error.h"

namespace raylight::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

int grid_for(int64_t n) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, 132 * 32)));
}

bool aligned(const void* p, uintptr_t to) { return reinterpret_cast<uintptr_t>(p) % to == 0; }

__device__ __forceinline__ float e4m3(uint8_t c) {
  __nv_fp8_e4m3 v;
  v.__x = c;
  return float(v);
}

__global__ void fp8_rows_to_bf16_kernel(const uint8_t* __restrict__ codes, int64_t count, int64_t cols,
                                        const float* __restrict__ scale, const float* __restrict__ offset,
                                        bf16* __restrict__ y) {
  const float d = scale[0];
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16(e4m3(codes[i]) * d + (offset ? offset[i % cols] : 0.0f));
}

__global__ void column_mean_kernel(const float* __restrict__ sum, float inv_n, int64_t C, float* __restrict__ mean) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < C; i += int64_t(gridDim.x) * blockDim.x)
    mean[i] = __fmul_rn(sum[i], inv_n);
}

// kVec: K % 16 == 0 with w and x 16-byte aligned (each lane takes 16 codes at a time).
template <bool kVec>
__global__ void e4m3_bias_gemv_kernel(const uint8_t* __restrict__ w, float w_scale, const float* __restrict__ x,
                                      const bf16* __restrict__ bias, bf16* __restrict__ y, int64_t N, int64_t K) {
  const int lane = threadIdx.x % 32;
  const int64_t n = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (n >= N) return;
  const uint8_t* row = w + n * K;
  float acc = 0.0f;
  if constexpr (kVec) {
    for (int64_t k = int64_t(lane) * 16; k < K; k += 32 * 16) {
      const uint4 raw = *reinterpret_cast<const uint4*>(row + k);
      const uint8_t* c = reinterpret_cast<const uint8_t*>(&raw);
      const float4* xv = reinterpret_cast<const float4*>(x + k);
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const float4 v = xv[q];
        acc = fmaf(e4m3(c[4 * q]), v.x, acc);
        acc = fmaf(e4m3(c[4 * q + 1]), v.y, acc);
        acc = fmaf(e4m3(c[4 * q + 2]), v.z, acc);
        acc = fmaf(e4m3(c[4 * q + 3]), v.w, acc);
      }
    }
  } else {
    for (int64_t k = lane; k < K; k += 32) acc = fmaf(e4m3(row[k]), x[k], acc);
  }
#pragma unroll
  for (int o = 16; o > 0; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (lane == 0) y[n] = __float2bfloat16((bias ? __bfloat162float(bias[n]) : 0.0f) + w_scale * acc);
}

}  // namespace

void fp8_rows_to_bf16(const uint8_t* codes, int64_t rows, int64_t cols, const float* scale, const float* offset,
                      bf16* y, cudaStream_t s) {
  const int64_t count = rows * cols;
  if (count == 0) return;
  if (count % 8 == 0 && cols % 8 == 0 && aligned(codes, 8) && aligned(y, 16)) {
    // offset * (1 / 1): the offset itself.
    fp8_to_bf16(codes, count, scale, cols, offset, 1, y, s);
    return;
  }
  fp8_rows_to_bf16_kernel<<<grid_for(count), kThreads, 0, s>>>(codes, count, cols, scale, offset, y);
  RL_CUDA_LAUNCH();
}

void column_mean(const float* sum, int64_t n, int64_t C, float* mean, cudaStream_t s) {
  if (n < 1) fail("column_mean: a mean over ", n, " rows");
  if (C == 0) return;
  column_mean_kernel<<<grid_for(C), kThreads, 0, s>>>(sum, 1.0f / static_cast<float>(n), C, mean);
  RL_CUDA_LAUNCH();
}

void e4m3_bias_gemv(const uint8_t* w, float w_scale, const float* x, const bf16* bias, bf16* y, int64_t N, int64_t K,
                    cudaStream_t s) {
  if (N == 0) return;
  const int64_t blocks = (N + kWarps - 1) / kWarps;
  if (blocks > 0x7fffffff) fail("e4m3_bias_gemv: ", N, " outputs are more than one launch covers");
  if (K % 16 == 0 && aligned(w, 16) && aligned(x, 16))
    e4m3_bias_gemv_kernel<true><<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(w, w_scale, x, bias, y, N, K);
  else
    e4m3_bias_gemv_kernel<false><<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(w, w_scale, x, bias, y, N, K);
  RL_CUDA_LAUNCH();
}

}  // namespace raylight::cuda
