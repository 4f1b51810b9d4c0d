// Kernels over fp32 operands. The reference DiT code keeps its residual stream, the time
// embedding and the modulation vectors in fp32 (autocast(float32) regions) while the big
// products and attention run in bf16; holding those in bf16 doubled our GPU error against
// the reference (issue 24). These kernels are pointwise and bandwidth-bound, plus one
// tiled fp32 product for the small linears that stay fp32 (time embedding: M = 1; the head:
// N = 64), where cuBLASLt's bf16-output products do not fit.
#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/kernels.h"

#include <cuda_fp8.h>

namespace raylight::cuda {
namespace {

__device__ __forceinline__ float read(AnyRow r, int64_t i) {
  return r.f32 ? static_cast<const float*>(r.p)[i] : __bfloat162float(static_cast<const bf16*>(r.p)[i]);
}

int grid_for(int64_t n) { return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((n + 255) / 256, 132 * 32))); }

__global__ void add_mixed_kernel(AnyRow a, AnyRow b, void* y, bool y_f32, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float v = read(a, i) + read(b, i);
    if (y_f32) static_cast<float*>(y)[i] = v;
    else static_cast<bf16*>(y)[i] = __float2bfloat16_rn(v);
  }
}

__global__ void add_gated_mixed_kernel(void* x, bool x_f32, AnyRow y, AnyRow gate, int64_t n, int64_t cols) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = gate.p ? read(gate, i % cols) : 1.f;
    if (x_f32) {
      float* xf = static_cast<float*>(x);
      xf[i] += read(y, i) * g;
    } else {
      bf16* xb = static_cast<bf16*>(x);
      xb[i] = __float2bfloat16_rn(__bfloat162float(xb[i]) + read(y, i) * g);
    }
  }
}

// The DiT's gated residual add with x in fp32: V values per thread (16-byte accesses when
// aligned), the column found once per V values.
template <int V, typename X, typename G>
__global__ void add_gated_rows_kernel(X* __restrict__ x, const bf16* __restrict__ y, const G* __restrict__ gate,
                                      int64_t rows, int64_t cols) {
  const int64_t per_row = cols / V, n = rows * per_row;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / per_row, c = (i - r * per_row) * V;
    float xv[V], yv[V], g[V];
    load_v<V>(x + r * cols + c, xv);
    load_v<V>(y + r * cols + c, yv);
    if (gate) load_v<V>(gate + c, g);
#pragma unroll
    for (int j = 0; j < V; ++j) xv[j] += gate ? yv[j] * g[j] : yv[j];
    store_v<V>(x + r * cols + c, xv);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

__global__ void silu_f32_kernel(const float* x, float* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float v = x[i];
    y[i] = v / (1.f + expf(-v));
  }
}

// 64 x 64 output tile per block of 256 threads, each thread a 4 x 4 sub-tile; K in steps
// of 16 through shared memory, the weight converted to fp32 as it is staged.
constexpr int kBM = 64, kBN = 64, kBK = 16;

template <typename W>
__device__ __forceinline__ float weight_value(const W* w, int64_t i, float scale);
template <>
__device__ __forceinline__ float weight_value<bf16>(const bf16* w, int64_t i, float) {
  return __bfloat162float(w[i]);
}
template <>
__device__ __forceinline__ float weight_value<float>(const float* w, int64_t i, float) { return w[i]; }
template <>
__device__ __forceinline__ float weight_value<uint8_t>(const uint8_t* w, int64_t i, float scale) {
  __nv_fp8_e4m3 v;
  v.__x = w[i];
  return static_cast<float>(v) * scale;
}

template <typename W>
__global__ void linear_f32_kernel(const float* __restrict__ x, const W* __restrict__ w, float w_scale,
                                  const bf16* __restrict__ bias, float* __restrict__ y, int64_t M, int64_t N,
                                  int64_t K) {
  __shared__ float xs[kBK][kBM + 1];
  __shared__ float ws[kBK][kBN + 1];
  const int64_t m0 = blockIdx.y * int64_t(kBM), n0 = blockIdx.x * int64_t(kBN);
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kBK) {
    for (int e = threadIdx.x; e < kBM * kBK; e += blockDim.x) {
      const int r = e / kBK, c = e % kBK;
      const int64_t m = m0 + r, k = k0 + c;
      xs[c][r] = (m < M && k < K) ? x[m * K + k] : 0.f;
      const int64_t n = n0 + r;
      ws[c][r] = (n < N && k < K) ? weight_value<W>(w, n * K + k, w_scale) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int c = 0; c < kBK; ++c) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = xs[c][ty * 4 + i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = ws[c][tx * 4 + j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t m = m0 + ty * 4 + i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t n = n0 + tx * 4 + j;
      if (n < N) y[m * N + n] = acc[i][j] + (bias ? __bfloat162float(bias[n]) : 0.f);
    }
  }
}

}  // namespace

void add_mixed(AnyRow a, AnyRow b, void* y, bool y_f32, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  add_mixed_kernel<<<grid_for(n), 256, 0, s>>>(a, b, y, y_f32, n);
  RL_CUDA_LAUNCH();
}

void add_gated_mixed(void* x, bool x_f32, AnyRow y, AnyRow gate, int64_t rows, int64_t cols, cudaStream_t s) {
  const int64_t n = rows * cols;
  if (n == 0) return;
  // The residual stream's case (fp32 x, bf16 update, fp32 gate or none), vectorised.
  if (x_f32 && !y.f32 && (!gate.p || gate.f32) && cols % 8 == 0 && aligned16(x) && aligned16(y.p) &&
      (!gate.p || aligned16(gate.p))) {
    add_gated_rows_kernel<8><<<grid_for(n / 8), 256, 0, s>>>(static_cast<float*>(x), static_cast<const bf16*>(y.p),
                                                             static_cast<const float*>(gate.p), rows, cols);
    RL_CUDA_LAUNCH();
    return;
  }
  add_gated_mixed_kernel<<<grid_for(n), 256, 0, s>>>(x, x_f32, y, gate, n, cols);
  RL_CUDA_LAUNCH();
}

void silu_f32(const float* x, float* y, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  silu_f32_kernel<<<grid_for(n), 256, 0, s>>>(x, y, n);
  RL_CUDA_LAUNCH();
}

void linear_f32(const float* x, const void* w, DType w_type, float w_scale, const bf16* bias, float* y, int64_t M,
                int64_t N, int64_t K, cudaStream_t s) {
  if (M == 0 || N == 0) return;
  if ((M + kBM - 1) / kBM > 65535) fail("linear_f32: ", M, " rows are more than one launch covers");
  const dim3 grid(static_cast<unsigned>((N + kBN - 1) / kBN), static_cast<unsigned>((M + kBM - 1) / kBM));
  switch (w_type) {
    case DType::BF16:
      linear_f32_kernel<<<grid, 256, 0, s>>>(x, static_cast<const bf16*>(w), 1.f, bias, y, M, N, K);
      break;
    case DType::F32:
      linear_f32_kernel<<<grid, 256, 0, s>>>(x, static_cast<const float*>(w), 1.f, bias, y, M, N, K);
      break;
    case DType::F8E4M3:
      linear_f32_kernel<<<grid, 256, 0, s>>>(x, static_cast<const uint8_t*>(w), w_scale, bias, y, M, N, K);
      break;
    default:
      fail("linear_f32: weights of dtype ", dtype_name(w_type), " are not multiplied here");
  }
  RL_CUDA_LAUNCH();
}

}  // namespace raylight::cuda
