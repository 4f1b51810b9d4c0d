// Device helpers shared by the kernel files: bf16 and fp32 vector loads/stores (8 values = one
// 16-byte access when aligned, else scalar), block reductions, a counter-based Gaussian.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cstdint>

namespace raylight::cuda {

template <int V>
__device__ __forceinline__ void load_v(const __nv_bfloat16* p, float* out) {
  if constexpr (V == 8) {
    uint4 u = *reinterpret_cast<const uint4*>(p);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float2 f = __bfloat1622float2(h[i]);
      out[2 * i] = f.x;
      out[2 * i + 1] = f.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) out[i] = __bfloat162float(p[i]);
  }
}

template <int V>
__device__ __forceinline__ void store_v(__nv_bfloat16* p, const float* in) {
  if constexpr (V == 8) {
    uint4 u;
    __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(in[2 * i], in[2 * i + 1]);
    *reinterpret_cast<uint4*>(p) = u;
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) p[i] = __float2bfloat16_rn(in[i]);
  }
}

// fp32 rows (the residual stream and modulation vectors kept at full precision): 8
// values = two 16-byte accesses when aligned.
template <int V>
__device__ __forceinline__ void load_v(const float* p, float* out) {
  if constexpr (V == 8) {
    const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
    out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w;
    out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) out[i] = p[i];
  }
}

template <int V>
__device__ __forceinline__ void store_v(float* p, const float* in) {
  if constexpr (V == 8) {
    reinterpret_cast<float4*>(p)[0] = make_float4(in[0], in[1], in[2], in[3]);
    reinterpret_cast<float4*>(p)[1] = make_float4(in[4], in[5], in[6], in[7]);
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) p[i] = in[i];
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

struct WarpSum {
  __device__ __forceinline__ float operator()(float v) const { return warp_sum(v); }
};
struct WarpMax {
  __device__ __forceinline__ float operator()(float v) const { return warp_max(v); }
};

// A reduction over the block; every thread gets the result. `scratch` holds 32 floats;
// `identity` stands in for the lanes past the last warp.
template <typename WarpReduce>
__device__ __forceinline__ float block_reduce(float v, float* scratch, float identity) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = WarpReduce()(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nw ? scratch[lane] : identity;
  return WarpReduce()(v);
}

__device__ __forceinline__ float block_sum(float v, float* scratch) {
  return block_reduce<WarpSum>(v, scratch, 0.f);
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
  return block_reduce<WarpMax>(v, scratch, -INFINITY);
}

__device__ __forceinline__ uint64_t splitmix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Standard normal for index i of stream `seed` (Box-Muller on two hashed counters).
__device__ __forceinline__ float gaussian(uint64_t seed, uint64_t i) {
  const uint64_t a = splitmix(seed + (2 * i + 1) * 0x9E3779B97F4A7C15ull);
  const uint64_t b = splitmix(seed + (2 * i + 2) * 0x9E3779B97F4A7C15ull);
  const float u1 = ((a >> 40) + 1) * (1.0f / 16777216.0f);
  const float u2 = (b >> 40) * (1.0f / 16777216.0f);
  return sqrtf(-2.f * logf(u1)) * cospif(2.f * u2);
}

}  // namespace raylight::cuda
