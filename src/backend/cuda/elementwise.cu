// Pointwise kernels: activations, adds, gated residuals, modulation, dtype conversion and
// fp8 quantisation. Each op is a small functor applied to V consecutive elements by the
// launcher of pointwise.cuh.
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/pointwise.cuh"

namespace raylight::cuda {
namespace {

// 0.5 x (1 + tanh(u)) written as x * sigmoid(2u): the same function, without the
// cancellation of 1 + tanh(u) for very negative x.
__device__ __forceinline__ float gelu_tanh_f(float v) {
  const float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
  return v / (1.f + __expf(-2.f * u));
}
// erfc form: 1 + erf(x) cancels to 0 in fp32 for x < -4, erfc(-x) keeps the tail.
__device__ __forceinline__ float gelu_erf_f(float v) { return 0.5f * v * erfcf(-v * 0.7071067811865476f); }
__device__ __forceinline__ float silu_f(float v) { return v / (1.f + expf(-v)); }

struct UnaryOp {
  const bf16* x;
  bf16* y;
  Unary kind;
  template <int V> __device__ void apply(int64_t b) const {
    float a[V];
    load_v<V>(x + b, a);
#pragma unroll
    for (int j = 0; j < V; ++j)
      a[j] = kind == Unary::GeluTanh ? gelu_tanh_f(a[j]) : kind == Unary::GeluErf ? gelu_erf_f(a[j]) : silu_f(a[j]);
    store_v<V>(y + b, a);
  }
};

struct AddOp {
  const bf16 *a, *b;
  bf16* y;
  template <int V> __device__ void apply(int64_t i) const {
    float p[V], q[V];
    load_v<V>(a + i, p);
    load_v<V>(b + i, q);
#pragma unroll
    for (int j = 0; j < V; ++j) p[j] += q[j];
    store_v<V>(y + i, p);
  }
};

struct AddGatedOp {
  bf16* x;
  const bf16 *y, *gate;
  int64_t cols;
  template <int V> __device__ void apply(int64_t i) const {
    float p[V], q[V], g[V];
    load_v<V>(x + i, p);
    load_v<V>(y + i, q);
    if (gate) load_v<V>(gate + i % cols, g);
#pragma unroll
    for (int j = 0; j < V; ++j) p[j] += gate ? q[j] * g[j] : q[j];
    store_v<V>(x + i, p);
  }
};

struct ModulateOp {
  const bf16 *x, *shift, *scale;
  bf16* y;
  int64_t cols;
  template <int V> __device__ void apply(int64_t i) const {
    float p[V], sh[V], sc[V];
    load_v<V>(x + i, p);
    load_v<V>(shift + i % cols, sh);
    load_v<V>(scale + i % cols, sc);
#pragma unroll
    for (int j = 0; j < V; ++j) p[j] = p[j] * (1.f + sc[j]) + sh[j];
    store_v<V>(y + i, p);
  }
};

__device__ __forceinline__ float stored_to_f32(const void* src, DType from, int64_t i) {
  switch (from) {
    case DType::F32: return static_cast<const float*>(src)[i];
    case DType::F16: return __half2float(static_cast<const __half*>(src)[i]);
    case DType::BF16: return __bfloat162float(static_cast<const bf16*>(src)[i]);
    case DType::F8E4M3: {
      __nv_fp8_e4m3 v;
      v.__x = static_cast<const uint8_t*>(src)[i];
      return float(v);
    }
    case DType::F8E5M2: {
      __nv_fp8_e5m2 v;
      v.__x = static_cast<const uint8_t*>(src)[i];
      return float(v);
    }
    default: return __int_as_float(0x7fc00000);
  }
}

__global__ void convert_kernel(const void* src, DType from, float scale, bf16* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = __float2bfloat16_rn(stored_to_f32(src, from, i) * scale);
}

__global__ void to_f32_kernel(const bf16* src, float* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = __bfloat162float(src[i]);
}

// max |x[i]| over this thread's share of x[0, n): every stride-th element from `first`, or
// every stride-th 8-element vector where n % 8 == 0 (x 16-byte aligned). NaN skipped (fmaxf).
__device__ __forceinline__ float strided_absmax(const bf16* x, int64_t n, int64_t first, int64_t stride) {
  float m = 0.f;
  if (n % 8 == 0) {
    for (int64_t i = first; i < n / 8; i += stride) {
      float a[8];
      load_v<8>(x + i * 8, a);
#pragma unroll
      for (int j = 0; j < 8; ++j) m = fmaxf(m, fabsf(a[j]));
    }
  } else {
    for (int64_t i = first; i < n; i += stride) m = fmaxf(m, fabsf(__bfloat162float(x[i])));
  }
  return m;
}

// The block's max of m, in warp 0's lanes (other threads: their own warp's max). Every thread
// of the block calls it; scratch: 32 floats of shared memory.
__device__ __forceinline__ float block_max(float m, float* scratch) {
  m = warp_max(m);
  if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = m;
  __syncthreads();
  if (threadIdx.x < 32) {
    m = threadIdx.x < blockDim.x / 32 ? scratch[threadIdx.x] : 0.f;
    m = warp_max(m);
  }
  return m;
}

// e4m3 codes of a[0..8) * inv as one 8-byte word (byte j: element j).
__device__ __forceinline__ uint2 e4m3_pack8(const float (&a)[8], float inv) {
  uint2 packed{0u, 0u};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    packed.x |= uint32_t(__nv_fp8_e4m3(a[j] * inv).__x) << (8 * j);
    packed.y |= uint32_t(__nv_fp8_e4m3(a[j + 4] * inv).__x) << (8 * j);
  }
  return packed;
}

__global__ void absmax_kernel(const bf16* x, int64_t n, float* amax) {
  __shared__ float scratch[32];
  const float m = block_max(
      strided_absmax(x, n, blockIdx.x * int64_t(blockDim.x) + threadIdx.x, int64_t(gridDim.x) * blockDim.x), scratch);
  // Non-negative floats order like their bit patterns as signed ints.
  if (threadIdx.x == 0) atomicMax(reinterpret_cast<int*>(amax), __float_as_int(m));
}

struct QuantOp {
  const bf16* x;
  uint8_t* y;
  const float* amax;
  template <int V> __device__ void apply(int64_t i) const {
    const float inv = 448.f / fmaxf(*amax, 1e-12f);
    float a[V];
    load_v<V>(x + i, a);
    if constexpr (V == 8) {
      // One 8-byte store per thread (launch() gives V = 8 only for 16-byte aligned y and
      // i % 8 == 0) instead of eight byte stores.
      *reinterpret_cast<uint2*>(y + i) = e4m3_pack8(a, inv);
    } else {
#pragma unroll
      for (int j = 0; j < V; ++j) y[i + j] = __nv_fp8_e4m3(a[j] * inv).__x;
    }
  }
};

// One block a row: its max |x| first, then the codes from a second read of the row (from L1 or
// L2: a row is at most tens of KB), so the device memory traffic is one read and one write.
__global__ void quantize_rows_kernel(const bf16* __restrict__ x, int64_t cols, uint8_t* __restrict__ y,
                                     float* __restrict__ descale) {
  const int64_t r = blockIdx.x;
  const bf16* row = x + r * cols;
  uint8_t* out = y + r * cols;
  __shared__ float scratch[32];
  const float m = block_max(strided_absmax(row, cols, threadIdx.x, blockDim.x), scratch);
  __syncthreads();  // every warp has read its scratch entry before thread 0 reuses it
  if (threadIdx.x == 0) scratch[0] = m;
  __syncthreads();
  const float amax = fmaxf(scratch[0], 1e-12f), inv = 448.f / amax;
  if (threadIdx.x == 0) descale[r] = amax / 448.f;
  if (cols % 8 == 0) {  // then every row starts 16-byte aligned (x is)
    for (int64_t i = threadIdx.x; i < cols / 8; i += blockDim.x) {
      float a[8];
      load_v<8>(row + i * 8, a);
      *reinterpret_cast<uint2*>(out + i * 8) = e4m3_pack8(a, inv);
    }
  } else {
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) out[i] = __nv_fp8_e4m3(__bfloat162float(row[i]) * inv).__x;
  }
}

__global__ void fill_f32_kernel(float* y, int64_t n, float v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) y[i] = v;
}

__global__ void write_scale_kernel(const float* amax, float* scale_out) {
  *scale_out = fmaxf(*amax, 1e-12f) / 448.f;
}

__global__ void random_bf16_kernel(bf16* y, int64_t n, uint64_t seed, float mean, float std) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16_rn(mean + std * gaussian(seed, i));
}

__global__ void random_e4m3_kernel(uint8_t* y, int64_t n, uint64_t seed, float std, float scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __nv_fp8_e4m3(std * gaussian(seed, i) / scale).__x;
}

int grid_for(int64_t n) { return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((n + 255) / 256, 132 * 32))); }

}  // namespace

void convert_to_bf16(const void* src, DType from, float scale, bf16* dst, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  convert_kernel<<<grid_for(n), 256, 0, s>>>(src, from, scale, dst, n);
  RL_CUDA_LAUNCH();
}

void bf16_to_f32(const bf16* src, float* dst, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  to_f32_kernel<<<grid_for(n), 256, 0, s>>>(src, dst, n);
  RL_CUDA_LAUNCH();
}

void unary(Unary op, const bf16* x, bf16* y, int64_t n, cudaStream_t s) {
  launch(UnaryOp{x, y, op}, n, 8, {x, y}, s);
}

void add(const bf16* a, const bf16* b, bf16* y, int64_t n, cudaStream_t s) {
  launch(AddOp{a, b, y}, n, 8, {a, b, y}, s);
}

void add_gated(bf16* x, const bf16* y, const bf16* gate, int64_t rows, int64_t cols, cudaStream_t s) {
  launch(AddGatedOp{x, y, gate, cols}, rows * cols, cols, {x, y, gate}, s);
}

void modulate(const bf16* x, const bf16* shift, const bf16* scale, bf16* y, int64_t rows,
              int64_t cols, cudaStream_t s) {
  launch(ModulateOp{x, shift, scale, y, cols}, rows * cols, cols, {x, shift, scale, y}, s);
}

void absmax(const bf16* x, int64_t n, float* amax, cudaStream_t s) {
  RL_CUDA(cudaMemsetAsync(amax, 0, sizeof(float), s));
  if (n == 0) return;
  absmax_kernel<<<std::min(grid_for(n / 8 + 1), 132 * 4), 256, 0, s>>>(x, n, amax);
  RL_CUDA_LAUNCH();
}

void quantize_e4m3(const bf16* x, int64_t n, const float* amax, uint8_t* y, float* scale_out,
                   cudaStream_t s) {
  launch(QuantOp{x, y, amax}, n, 8, {x, y}, s);
  write_scale_kernel<<<1, 1, 0, s>>>(amax, scale_out);
  RL_CUDA_LAUNCH();
}

void quantize_rows_e4m3(const bf16* x, int64_t rows, int64_t cols, uint8_t* y, float* row_descale, cudaStream_t s) {
  if (rows <= 0 || cols <= 0) return;
  if (rows > int64_t(INT32_MAX)) fail("quantize_rows_e4m3: ", rows, " rows");
  quantize_rows_kernel<<<static_cast<unsigned>(rows), 256, 0, s>>>(x, cols, y, row_descale);
  RL_CUDA_LAUNCH();
}

void fill_f32(float* y, int64_t n, float v, cudaStream_t s) {
  if (n <= 0) return;
  fill_f32_kernel<<<grid_for(n), 256, 0, s>>>(y, n, v);
  RL_CUDA_LAUNCH();
}

void random_bf16(bf16* y, int64_t n, uint64_t seed, float mean, float std, cudaStream_t s) {
  if (n == 0) return;
  random_bf16_kernel<<<grid_for(n), 256, 0, s>>>(y, n, seed, mean, std);
  RL_CUDA_LAUNCH();
}

void random_e4m3(uint8_t* y, int64_t n, uint64_t seed, float std, float scale, cudaStream_t s) {
  if (n == 0) return;
  random_e4m3_kernel<<<grid_for(n), 256, 0, s>>>(y, n, seed, std, scale);
  RL_CUDA_LAUNCH();
}

}  // namespace raylight::cuda
