// The fp32 product y = x w^T (+ b) of the small linears a DiT keeps in fp32 (kernels.h,
// linear_f32): the head (Wan 14B at 480p: M = 32,760 rows, K = 5,120, N = 64) and the time
// embedding (M = 1). fp32 x, the weight widened to fp32 (bf16, fp32, or e4m3 codes times
// their scale), fp32 arithmetic: cuBLASLt's bf16 products would round x.
//
// Three kernels, chosen by shape and alignment:
// - tiled: a 128 x 64 output tile per block of 128 threads, each thread 8 x 8 outputs (rows
//   16 apart, columns 8 apart, so a warp's shared-memory reads hit distinct banks). x and w
//   tiles are both stored k-contiguous (rows of 32 + 4 floats), read as float4 along k: no
//   transpose on the way in, 16 shared loads per 256 FMAs. x comes in by cp.async three
//   tiles ahead; w (small, L2-resident) is widened in registers one tile ahead and stored
//   after the tile's products. The head moves 671 MB of x: ~0.2 ms at HBM speed, but its
//   21.5 GFLOP on CUDA cores (~60 TFLOP/s fp32 on an H200) is the real floor.
// - rows (M <= kRowsMax): one warp per output column, lanes along k with 16-byte loads: the
//   time embedding reads its weight once instead of running a mostly empty tile.
// - general: the former 64 x 64 tiled kernel, for K not a multiple of 4 or misaligned data.
// Each output sums its K products in fp32; the order differs between kernels (and from the
// CPU), nothing is rounded below fp32.
#include <cuda_fp8.h>

#include <atomic>
#include <cstdint>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

namespace raylight::cuda {
namespace {

// --- weight values ----------------------------------------------------------------------

__device__ __forceinline__ float widen(float v, float) { return v; }
__device__ __forceinline__ float widen(bf16 v, float) { return __bfloat162float(v); }
__device__ __forceinline__ float widen(uint8_t c, float scale) {
  __nv_fp8_e4m3 v;
  v.__x = c;
  return static_cast<float>(v) * scale;
}

// Four consecutive weights (4-element aligned) as one load: 16, 8 or 4 bytes.
template <typename W>
struct Four;
template <>
struct Four<float> {
  using Raw = float4;
  __device__ static float4 widen4(Raw r, float) { return r; }
};
template <>
struct Four<bf16> {
  using Raw = uint2;
  __device__ static float4 widen4(Raw r, float) {
    return make_float4(__uint_as_float(r.x << 16), __uint_as_float(r.x & 0xffff0000u), __uint_as_float(r.y << 16),
                       __uint_as_float(r.y & 0xffff0000u));
  }
};
template <>
struct Four<uint8_t> {
  using Raw = uint32_t;
  __device__ static float4 widen4(Raw r, float scale) {
    return make_float4(widen(uint8_t(r & 0xff), scale), widen(uint8_t((r >> 8) & 0xff), scale),
                       widen(uint8_t((r >> 16) & 0xff), scale), widen(uint8_t(r >> 24), scale));
  }
};

template <typename W>
__device__ __forceinline__ typename Four<W>::Raw load4(const W* p) {
  return *reinterpret_cast<const typename Four<W>::Raw*>(p);
}

// acc += a . b in k order (one rounding per product-add, as a dot product's loop).
__device__ __forceinline__ float dot4(float acc, float4 a, float4 b) {
  acc = fmaf(a.x, b.x, acc);
  acc = fmaf(a.y, b.y, acc);
  acc = fmaf(a.z, b.z, acc);
  return fmaf(a.w, b.w, acc);
}

// --- tiled ------------------------------------------------------------------------------

constexpr int kTM = 128, kTN = 64, kTK = 32;  // block tile; k per stage
constexpr int kRow = kTK + 4;                 // floats between tile rows: a warp's float4 reads of 4 (or 8)
                                              // rows 1 row apart land on distinct banks
constexpr int kThreads = 128;                 // 16 row groups x 8 column groups, 8 x 8 outputs each
constexpr int kStages = 3;                    // x tiles in flight (cp.async)
constexpr int kStageFloats = (kTM + kTN) * kRow;
constexpr size_t kTiledSmem = sizeof(float) * kStages * kStageFloats;  // 82,944 bytes
constexpr int kWGroups = kTN * kTK / 4 / kThreads;                     // w's 4-element groups per thread per tile
constexpr int kXChunks = kTM * kTK / 4 / kThreads;                     // x's 16-byte chunks per thread per tile

__device__ __forceinline__ void cp_async16(float* dst, const float* src, bool live) {
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(live ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Queues x's tile t (rows m0.., k from t * kTK) into xs; outside [M, K) is zero-filled. A
// warp copies 4 rows of 128 contiguous bytes per step (K % 4 == 0: a chunk is all in or out).
__device__ __forceinline__ void issue_x(const float* __restrict__ x, float* xs, int64_t m0, int64_t M, int64_t K,
                                        int64_t t) {
  const int64_t k0 = t * kTK;
#pragma unroll
  for (int r = 0; r < kXChunks; ++r) {
    const int c = threadIdx.x + kThreads * r, row = c / (kTK / 4), k4 = c % (kTK / 4);
    const int64_t m = m0 + row, k = k0 + 4 * k4;
    const bool live = m < M && k < K;
    cp_async16(xs + row * kRow + 4 * k4, live ? x + m * K + k : x, live);
  }
}

// w's tile t (columns n0..) widened to fp32: loaded into registers here, stored by store_w.
template <typename W>
struct WTile {
  typename Four<W>::Raw raw[kWGroups];
  bool live[kWGroups];

  __device__ __forceinline__ void load(const W* __restrict__ w, int64_t n0, int64_t N, int64_t K, int64_t t) {
    const int64_t k0 = t * kTK;
#pragma unroll
    for (int r = 0; r < kWGroups; ++r) {
      const int g = threadIdx.x + kThreads * r, row = g / (kTK / 4), k4 = g % (kTK / 4);
      const int64_t n = n0 + row, k = k0 + 4 * k4;
      live[r] = n < N && k < K;
      if (live[r]) raw[r] = load4(w + n * K + k);
    }
  }
  __device__ __forceinline__ void store(float* ws, float scale) const {
#pragma unroll
    for (int r = 0; r < kWGroups; ++r) {
      const int g = threadIdx.x + kThreads * r, row = g / (kTK / 4), k4 = g % (kTK / 4);
      const float4 v = live[r] ? Four<W>::widen4(raw[r], scale) : make_float4(0.f, 0.f, 0.f, 0.f);
      *reinterpret_cast<float4*>(ws + row * kRow + 4 * k4) = v;
    }
  }
};

// acc[i][j] += a[i].c * b[j].c for one component c (the same k) of every pair.
template <typename Component>
__device__ __forceinline__ void fma_outer(float (&acc)[8][8], const float4 (&a)[8], const float4 (&b)[8],
                                          Component c) {
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(c(a[i]), c(b[j]), acc[i][j]);
}

// Requires K % 4 == 0, x 16-byte aligned and w aligned to its 4-element loads (tiled_fits).
template <typename W>
__global__ void __launch_bounds__(kThreads) linear_f32_tiled_kernel(const float* __restrict__ x,
                                                                     const W* __restrict__ w, float w_scale,
                                                                     const bf16* __restrict__ bias,
                                                                     float* __restrict__ y, int64_t M, int64_t N,
                                                                     int64_t K) {
  extern __shared__ float4 smem4[];
  float* smem = reinterpret_cast<float*>(smem4);
  auto xs = [&](int slot) { return smem + slot * kStageFloats; };
  auto ws = [&](int slot) { return smem + slot * kStageFloats + kTM * kRow; };
  const int64_t m0 = int64_t(blockIdx.y) * kTM, n0 = int64_t(blockIdx.x) * kTN;
  const int64_t tiles = (K + kTK - 1) / kTK;
  const int tn = threadIdx.x % 8, tm = threadIdx.x / 8;  // this thread: rows tm + 16 i, columns tn + 8 j

  WTile<W> wt;
  for (int s = 0; s + 1 < kStages; ++s) {
    if (s < tiles) {
      issue_x(x, xs(s), m0, M, K, s);
      wt.load(w, n0, N, K, s);
      wt.store(ws(s), w_scale);
    }
    cp_async_commit();
  }

  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

  for (int64_t t = 0; t < tiles; ++t) {
    const int slot = static_cast<int>(t % kStages);
    cp_async_wait<kStages - 2>();  // this thread's copies of tile t have landed
    __syncthreads();               // everyone's, and w's stores; slot t - 1 is free again
    const int64_t ahead = t + kStages - 1;
    const int next = static_cast<int>(ahead % kStages);
    if (ahead < tiles) {
      issue_x(x, xs(next), m0, M, K, ahead);
      wt.load(w, n0, N, K, ahead);
    }
    cp_async_commit();

    const float* xt = xs(slot) + tm * kRow;
    const float* wtile = ws(slot) + tn * kRow;
#pragma unroll
    for (int kk = 0; kk < kTK; kk += 4) {
      float4 a[8], b[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) a[i] = *reinterpret_cast<const float4*>(xt + 16 * i * kRow + kk);
#pragma unroll
      for (int j = 0; j < 8; ++j) b[j] = *reinterpret_cast<const float4*>(wtile + 8 * j * kRow + kk);
      // k by k over all 64 outputs: 64 independent FMAs between two on one accumulator.
      fma_outer(acc, a, b, [](float4 v) { return v.x; });
      fma_outer(acc, a, b, [](float4 v) { return v.y; });
      fma_outer(acc, a, b, [](float4 v) { return v.z; });
      fma_outer(acc, a, b, [](float4 v) { return v.w; });
    }
    if (ahead < tiles) wt.store(ws(next), w_scale);  // its last reader was tile t - 1
  }
  cp_async_wait<0>();

  float b[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int64_t n = n0 + tn + 8 * j;
    b[j] = (bias && n < N) ? __bfloat162float(bias[n]) : 0.f;
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int64_t m = m0 + tm + 16 * i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int64_t n = n0 + tn + 8 * j;
      if (n < N) y[m * N + n] = acc[i][j] + b[j];
    }
  }
}

// --- a few rows -------------------------------------------------------------------------

constexpr int kRowsMax = 4;
constexpr int kRowsThreads = 256;  // 8 warps: 8 output columns per block

// One warp per column n: lanes take 4-element groups of k 32 groups apart, then a tree sum.
// x (a few rows) is re-read by every warp from L1/L2. Requires what the tiled kernel does.
template <typename W>
__global__ void __launch_bounds__(kRowsThreads) linear_f32_rows_kernel(const float* __restrict__ x,
                                                                        const W* __restrict__ w, float w_scale,
                                                                        const bf16* __restrict__ bias,
                                                                        float* __restrict__ y, int M, int64_t N,
                                                                        int64_t K) {
  const int lane = threadIdx.x % 32;
  const int64_t n = int64_t(blockIdx.x) * (kRowsThreads / 32) + threadIdx.x / 32;
  if (n >= N) return;
  const W* row = w + n * K;
  float acc[kRowsMax] = {};
  for (int64_t k = 4 * int64_t(lane); k < K; k += 4 * 32) {
    const float4 b = Four<W>::widen4(load4(row + k), w_scale);
#pragma unroll
    for (int r = 0; r < kRowsMax; ++r)
      if (r < M) acc[r] = dot4(acc[r], *reinterpret_cast<const float4*>(x + r * K + k), b);
  }
#pragma unroll
  for (int r = 0; r < kRowsMax; ++r) {
    float v = acc[r];
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0 && r < M) y[r * N + n] = v + (bias ? __bfloat162float(bias[n]) : 0.f);
  }
}

// --- general ----------------------------------------------------------------------------

// 64 x 64 output tile per block of 256 threads, each thread a 4 x 4 sub-tile; K in steps
// of 16 through shared memory, the weight converted to fp32 as it is staged. Any shape.
constexpr int kBM = 64, kBN = 64, kBK = 16;

template <typename W>
__global__ void linear_f32_general_kernel(const float* __restrict__ x, const W* __restrict__ w, float w_scale,
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
      ws[c][r] = (n < N && k < K) ? widen(w[n * K + k], w_scale) : 0.f;
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

// --- dispatch ---------------------------------------------------------------------------

bool aligned(const void* p, uintptr_t to) { return reinterpret_cast<uintptr_t>(p) % to == 0; }

// The tiled and rows kernels read 4 consecutive k at once from both operands.
template <typename W>
bool fours_fit(const float* x, const W* w, int64_t K) {
  return K % 4 == 0 && aligned(x, 16) && aligned(w, 4 * sizeof(W));
}

// The tiled kernel takes more than the default 48 KiB of dynamic shared memory: asked for
// once per device.
template <typename W>
void allow_tiled_smem() {
  constexpr int kDevices = 64;
  static std::atomic<bool> done[kDevices];
  int dev = 0;
  RL_CUDA(cudaGetDevice(&dev));
  if (dev >= 0 && dev < kDevices && done[dev].load(std::memory_order_relaxed)) return;
  RL_CUDA(cudaFuncSetAttribute(linear_f32_tiled_kernel<W>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(kTiledSmem)));
  if (dev >= 0 && dev < kDevices) done[dev].store(true, std::memory_order_relaxed);
}

template <typename W>
void run(const float* x, const W* w, float w_scale, const bf16* bias, float* y, int64_t M, int64_t N, int64_t K,
         cudaStream_t s) {
  if (fours_fit(x, w, K) && M <= kRowsMax) {
    const int64_t blocks = (N + kRowsThreads / 32 - 1) / (kRowsThreads / 32);
    if (blocks > 0x7fffffff) fail("linear_f32: ", N, " outputs are more than one launch covers");
    linear_f32_rows_kernel<W><<<static_cast<unsigned>(blocks), kRowsThreads, 0, s>>>(x, w, w_scale, bias, y,
                                                                                   static_cast<int>(M), N, K);
    RL_CUDA_LAUNCH();
    return;
  }
  if (fours_fit(x, w, K) && (M + kTM - 1) / kTM <= 65535 && (N + kTN - 1) / kTN <= 0x7fffffff) {
    allow_tiled_smem<W>();
    const dim3 grid(static_cast<unsigned>((N + kTN - 1) / kTN), static_cast<unsigned>((M + kTM - 1) / kTM));
    linear_f32_tiled_kernel<W><<<grid, kThreads, kTiledSmem, s>>>(x, w, w_scale, bias, y, M, N, K);
    RL_CUDA_LAUNCH();
    return;
  }
  if ((M + kBM - 1) / kBM > 65535) fail("linear_f32: ", M, " rows are more than one launch covers");
  const dim3 grid(static_cast<unsigned>((N + kBN - 1) / kBN), static_cast<unsigned>((M + kBM - 1) / kBM));
  linear_f32_general_kernel<W><<<grid, 256, 0, s>>>(x, w, w_scale, bias, y, M, N, K);
  RL_CUDA_LAUNCH();
}

}  // namespace

void linear_f32(const float* x, const void* w, DType w_type, float w_scale, const bf16* bias, float* y, int64_t M,
                int64_t N, int64_t K, cudaStream_t s) {
  if (M == 0 || N == 0) return;
  switch (w_type) {
    case DType::BF16: return run(x, static_cast<const bf16*>(w), 1.f, bias, y, M, N, K, s);
    case DType::F32: return run(x, static_cast<const float*>(w), 1.f, bias, y, M, N, K, s);
    case DType::F8E4M3: return run(x, static_cast<const uint8_t*>(w), w_scale, bias, y, M, N, K, s);
    default: fail("linear_f32: weights of dtype ", dtype_name(w_type), " are not multiplied here");
  }
}

}  // namespace raylight::cuda
