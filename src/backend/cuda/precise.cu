// Kernels over fp32 operands. The reference DiT code keeps its residual stream, the time
// embedding and the modulation vectors in fp32 (autocast(float32) regions) while the big
// products and attention run in bf16; holding those in bf16 doubled our GPU error against
// the reference (issue 24). These kernels are pointwise and bandwidth-bound; the fp32
// product of the small linears that stay fp32 is in linear_f32.cu.
#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/kernels.h"

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

}  // namespace raylight::cuda
