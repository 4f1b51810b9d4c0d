// Row norms with their neighbours fused: LayerNorm or RMSNorm, the optional affine weight
// and bias, and the optional DiT modulation x * (1 + scale) + shift, in one pass over the
// row. One block per row; the row is read once from global memory into shared memory as
// fp32, so mean and variance are two exact passes (no E[x^2] - E[x]^2 cancellation).
// The row (X) and the modulation vectors (M) may be bf16 or fp32: a DiT keeps its residual
// stream and modulation in fp32, as the reference code does, and the norm writes the bf16
// operand of the next product in the same pass.
#include <algorithm>
#include <type_traits>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/kernels.h"

namespace raylight::cuda {
namespace {

// v as a Y stores it (bf16: rounded to nearest, as store_v rounds).
template <typename Y>
__device__ __forceinline__ float stored_as(float v) {
  if constexpr (std::is_same_v<Y, float>) return v;
  else return __bfloat162float(__float2bfloat16_rn(v));
}

// With add_y: x + add_y * add_gate first (gate null: a plain add), then + then_y * then_gate
// where then_y is given, each sum rounded to X (as add_gated calls would store it); the sum
// written back to x when store, and normed as rounded, as add_gated then the norm would.
// With amax: the row's max |y| as stored, one atomicMax per block on the float's bits
// (non-negative floats order like their bits as ints) into *amax, zeroed by the launcher.
template <int V, typename X, typename M, typename Y>
__global__ void row_norm_kernel(const X* x, const bf16* __restrict__ w,
                                const bf16* __restrict__ b, const M* __restrict__ shift,
                                const M* __restrict__ scale, Y* __restrict__ y, int cols,
                                float eps, bool rms, const bf16* __restrict__ add_y, const M* __restrict__ add_gate,
                                const bf16* __restrict__ then_y, const M* __restrict__ then_gate, bool store,
                                float* __restrict__ amax) {
  extern __shared__ float row[];
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const X* xr = x + r * cols;
  float sum = 0.f;
  for (int c = threadIdx.x * V; c < cols; c += blockDim.x * V) {
    float a[V];
    load_v<V>(xr + c, a);
    if (add_y) {
      float u[V], g[V];
      load_v<V>(add_y + r * cols + c, u);
      if (add_gate) load_v<V>(add_gate + c, g);
#pragma unroll
      for (int j = 0; j < V; ++j) a[j] += add_gate ? u[j] * g[j] : u[j];
      if (then_y) {
#pragma unroll
        for (int j = 0; j < V; ++j) a[j] = stored_as<X>(a[j]);  // the first sum as x would hold it
        load_v<V>(then_y + r * cols + c, u);
        if (then_gate) load_v<V>(then_gate + c, g);
#pragma unroll
        for (int j = 0; j < V; ++j) a[j] += then_gate ? u[j] * g[j] : u[j];
      }
      if (store) {
        X* xw = const_cast<X*>(xr) + c;  // x is the residual stream updated in place
        store_v<V>(xw, a);
      }
#pragma unroll
      for (int j = 0; j < V; ++j) a[j] = stored_as<X>(a[j]);  // the sum as stored (rounded)
    }
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
  Y* yr = y + r * cols;
  float m = 0.f;  // max |y| as stored over this thread's columns (amax only)
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
    if (amax) {
#pragma unroll
      for (int j = 0; j < V; ++j) m = fmaxf(m, fabsf(stored_as<Y>(o[j])));
    }
  }
  if (amax) {  // the same for every thread of the block, so its barriers are safe
    m = block_max(m, scratch);
    if (threadIdx.x == 0) atomicMax(reinterpret_cast<int*>(amax), __float_as_int(m));
  }
}

bool al16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <int V, typename X, typename M, typename Y>
void launch_row_norm(const X* x, const bf16* weight, const bf16* bias, const M* shift, const M* scale, Y* y,
                     int64_t rows, int64_t cols, float eps, bool rms, const bf16* add_y, const M* add_gate,
                     const bf16* then_y, const M* then_gate, bool store, float* amax, cudaStream_t s) {
  const int threads = static_cast<int>(std::clamp<int64_t>((cols / V + 31) / 32 * 32, 32, 256));
  const size_t smem = static_cast<size_t>(cols) * sizeof(float);
  if (smem > 48 * 1024) {
    static bool raised = false;  // one flag per instantiation
    if (!raised) {
      RL_CUDA(cudaFuncSetAttribute(row_norm_kernel<V, X, M, Y>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   200 * 1024));
      raised = true;
    }
  }
  row_norm_kernel<V, X, M, Y><<<rows, threads, smem, s>>>(x, weight, bias, shift, scale, y, static_cast<int>(cols),
                                                        eps, rms, add_y, add_gate, then_y, then_gate, store, amax);
  RL_CUDA_LAUNCH();
}

template <typename X, typename M, typename Y>
void row_norm_typed(const void* xv, const bf16* weight, const bf16* bias, const void* shiftv, const void* scalev,
                    void* yv, int64_t rows, int64_t cols, float eps, bool rms, ResidualAdd add, float* amax,
                    cudaStream_t s) {
  const X* x = static_cast<const X*>(xv);
  Y* y = static_cast<Y*>(yv);
  const M* shift = static_cast<const M*>(shiftv);
  const M* scale = static_cast<const M*>(scalev);
  const M* gate = static_cast<const M*>(add.gate);
  const bf16* then_y = add.y ? add.then.y : nullptr;
  const M* then_gate = then_y ? static_cast<const M*>(add.then.gate) : nullptr;
  const bool vec = cols % 8 == 0 && al16(x) && al16(y) && (!weight || al16(weight)) && (!bias || al16(bias)) &&
                   (!shift || al16(shift)) && (!scale || al16(scale)) && (!add.y || al16(add.y)) &&
                   (!gate || al16(gate)) && (!then_y || al16(then_y)) && (!then_gate || al16(then_gate));
  if (vec)
    launch_row_norm<8>(x, weight, bias, shift, scale, y, rows, cols, eps, rms, add.y, gate, then_y, then_gate,
                       add.store, amax, s);
  else
    launch_row_norm<1>(x, weight, bias, shift, scale, y, rows, cols, eps, rms, add.y, gate, then_y, then_gate,
                       add.store, amax, s);
}

}  // namespace

void row_norm(const void* x, bool x_f32, const bf16* weight, const bf16* bias, const void* shift,
              const void* scale, bool mod_f32, void* y, bool y_f32, int64_t rows, int64_t cols, float eps, bool rms,
              cudaStream_t s, ResidualAdd add, float* amax) {
  if (amax) RL_CUDA(cudaMemsetAsync(amax, 0, sizeof(float), s));
  if (rows == 0) return;
  // Every combination the ops use: bf16 throughout; an fp32 residual row and/or fp32
  // modulation into the bf16 operand of a product; all fp32 for a head computed in fp32.
  if (y_f32) {
    if (!x_f32 || (!mod_f32 && (shift || scale))) fail("row_norm: an fp32 result needs fp32 operands");
    row_norm_typed<float, float, float>(x, weight, bias, shift, scale, y, rows, cols, eps, rms, add, amax, s);
  } else if (x_f32) {
    if (mod_f32) row_norm_typed<float, float, bf16>(x, weight, bias, shift, scale, y, rows, cols, eps, rms, add, amax, s);
    else row_norm_typed<float, bf16, bf16>(x, weight, bias, shift, scale, y, rows, cols, eps, rms, add, amax, s);
  } else {
    if (mod_f32) row_norm_typed<bf16, float, bf16>(x, weight, bias, shift, scale, y, rows, cols, eps, rms, add, amax, s);
    else row_norm_typed<bf16, bf16, bf16>(x, weight, bias, shift, scale, y, rows, cols, eps, rms, add, amax, s);
  }
}

}  // namespace raylight::cuda
