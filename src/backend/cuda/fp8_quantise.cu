#include "backend/cuda/fp8_quantise.h"

#include <cuda_fp8.h>

#include <algorithm>
#include <cmath>

#include "backend/cuda/cuda_check.h"
#include "backend/fp8_rotation.h"
#include "core/error.h"

namespace raylight::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kStatThreads = 64;  // a statistics block covers 8 x 64 = 512 columns
constexpr int kMaxOperands = 3;
constexpr unsigned kFullMask = 0xffffffffu;

struct Batch {
  Fp8Operand op[kMaxOperands];
};

// The chunks of stat rows each operand's statistics are split into: about a thousand blocks
// per operand to fill the device, at least 32 rows each.
int64_t stat_chunks(int64_t C, int64_t max_stat_rows) {
  const int64_t tiles = (C + 8 * kStatThreads - 1) / (8 * kStatThreads);
  const int64_t by_device = std::max<int64_t>(1, 1024 / tiles), by_rows = (max_stat_rows + 31) / 32;
  return std::max<int64_t>(1, std::min<int64_t>({by_device, by_rows, 256}));
}

__device__ __forceinline__ void load8(const bf16* p, bool ok, float v[8]) {
  if (!ok) {
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = 0.0f;
    return;
  }
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const bf16* b = reinterpret_cast<const bf16*>(&raw);
#pragma unroll
  for (int j = 0; j < 8; ++j) v[j] = __bfloat162float(b[j]);
}

// backend/fp8_rotation.h's H S x / sqrt(D) for the head whose channels c0 .. c0 + 7 this lane
// holds: D / 8 neighbouring lanes hold one head, in order. Every lane of the warp must call it
// (the butterflies across lanes are shuffles); lanes without data pass zeros. norm: 1 / sqrt(D)
// as the host computes it (fast-math device division would differ in the last bit).
__device__ __forceinline__ void rotate8(float v[8], int64_t c0, int64_t D, float norm) {
  const int64_t d0 = c0 % D;
#pragma unroll
  for (int j = 0; j < 8; ++j)
    if (fp8_rotation_flips(d0 + j)) v[j] = -v[j];
#pragma unroll
  for (int h = 1; h < 8; h <<= 1)
#pragma unroll
    for (int j = 0; j < 8; ++j)
      if ((j & h) == 0) {
        const float a = v[j], b = v[j + h];
        v[j] = a + b;
        v[j + h] = a - b;
      }
  const int lane = threadIdx.x & 31, lanes = static_cast<int>(D / 8);
  for (int m = 1; m < lanes; m <<= 1)
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float p = __shfl_xor_sync(kFullMask, v[j], m);
      v[j] = (lane & m) ? p - v[j] : v[j] + p;
    }
#pragma unroll
  for (int j = 0; j < 8; ++j) v[j] *= norm;
}

// Partial statistics of the stat rows of one chunk (blockIdx.y) for 8 columns per thread:
// ws[operand][chunk][0 | 1 | 2][C] = sum, max, min (of rotated values where the operand
// rotates). Rows come four at a time so several loads are in flight per thread.
__global__ void stats_kernel(Batch b, int64_t C, int64_t D, float norm, int64_t rows_per_chunk, int64_t chunks,
                             float* __restrict__ ws) {
  const Fp8Operand& o = b.op[blockIdx.z];
  const int64_t c0 = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 8;
  const bool active = c0 < C;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_chunk, r1 = min(o.stat_rows, r0 + rows_per_chunk);
  float s[8], mx[8], mn[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    s[j] = 0.0f;
    mx[j] = -INFINITY;
    mn[j] = INFINITY;
  }
  for (int64_t r = r0; r < r1; r += 4) {  // uniform over the block: every lane shuffles alike
    float v[4][8];
#pragma unroll
    for (int u = 0; u < 4; ++u) load8(o.x + (r + u) * C + c0, active && r + u < r1, v[u]);
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      if (o.rotate) rotate8(v[u], c0, D, norm);
      if (r + u < r1)
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          s[j] += v[u][j];
          mx[j] = fmaxf(mx[j], v[u][j]);
          mn[j] = fminf(mn[j], v[u][j]);
        }
    }
  }
  if (!active) return;
  float* p = ws + (int64_t(blockIdx.z) * chunks + blockIdx.y) * 3 * C + c0;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    p[j] = s[j];
    p[C + j] = mx[j];
    p[2 * C + j] = mn[j];
  }
}

// Column sums and each operand's amax from the partials: the centred amax of a column is
// max(max - mean, mean - min), and a non-finite sum (a NaN or infinity anywhere in the
// column) makes it infinite. Non-negative floats order like their bits: atomicMax on them.
__global__ void reduce_kernel(Batch b, int64_t C, int64_t chunks, const float* __restrict__ ws,
                              unsigned* __restrict__ amax) {
  const Fp8Operand& o = b.op[blockIdx.y];
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  float a = 0.0f;
  if (c < C) {
    const float* p = ws + int64_t(blockIdx.y) * chunks * 3 * C + c;
    float s = 0.0f, mx = -INFINITY, mn = INFINITY;
    for (int64_t k = 0; k < chunks; ++k, p += 3 * C) {
      s += p[0];
      mx = fmaxf(mx, p[C]);
      mn = fminf(mn, p[2 * C]);
    }
    if (o.sum) o.sum[c] = s;
    const float mean = (o.smooth && o.stat_rows > 0) ? s / static_cast<float>(o.stat_rows) : 0.0f;
    a = isfinite(s) ? fmaxf(0.0f, fmaxf(mx - mean, mean - mn)) : INFINITY;
  }
  for (int m = 16; m > 0; m >>= 1) a = fmaxf(a, __shfl_xor_sync(kFullMask, a, m));
  __shared__ float warp_max[kThreads / 32];
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x / 32] = a;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) a = fmaxf(a, warp_max[w]);
    atomicMax(amax + blockIdx.y, __float_as_uint(a));
  }
}

__device__ __forceinline__ float scale_of(float amax) {
  return (amax > 0.0f && isfinite(amax)) ? 448.0f / amax : 1.0f;
}

// y = e4m3(clamp((rotate(x) - mean) * scale)) for every row of operand blockIdx.z. Warps step
// together (the rotation shuffles), lanes past the end carry zeros and store nothing.
__global__ void quantise_kernel(Batch b, int64_t C, int64_t D, float norm, const float* __restrict__ amax) {
  const Fp8Operand& o = b.op[blockIdx.z];
  const float scale = scale_of(amax[blockIdx.z]);
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    o.descale[0] = 1.0f / scale;
    if (o.scale) o.scale[0] = scale;
  }
  const int64_t count8 = o.rows * C / 8;
  const float inv_n = (o.smooth && o.stat_rows > 0) ? 1.0f / static_cast<float>(o.stat_rows) : 0.0f;
  const int lane = threadIdx.x & 31;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t base = int64_t(blockIdx.x) * blockDim.x + (threadIdx.x & ~31); base < count8; base += stride) {
    const int64_t i = base + lane;
    const bool ok = i < count8;
    const int64_t c0 = (i * 8) % C;
    float v[8];
    load8(o.x + i * 8, ok, v);
    if (o.rotate) rotate8(v, c0, D, norm);
    if (!ok) continue;
    uint2 out;
    uint8_t* q = reinterpret_cast<uint8_t*>(&out);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float f = (v[j] - (o.smooth ? o.sum[c0 + j] * inv_n : 0.0f)) * scale;
      q[j] = __nv_cvt_float_to_fp8(f, __NV_SATFINITE, __NV_E4M3);
    }
    reinterpret_cast<uint2*>(o.y)[i] = out;
  }
}

// Eight elements per thread (one 8-byte load, one 16-byte store, one column index): the
// output of a 14B call is 168 M elements, where a 64-bit modulo per element would cost more
// than the memory traffic.
__global__ void fp8_to_bf16_kernel(const uint8_t* __restrict__ x, int64_t count8, const float* __restrict__ descale,
                                   int64_t C, const float* __restrict__ sum, float inv_n, bf16* __restrict__ y) {
  const float d = descale[0];
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count8; i += int64_t(gridDim.x) * blockDim.x) {
    const uint2 raw = reinterpret_cast<const uint2*>(x)[i];
    const uint8_t* codes = reinterpret_cast<const uint8_t*>(&raw);
    const int64_t c0 = (i * 8) % C;
    uint4 out;
    bf16* o = reinterpret_cast<bf16*>(&out);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      __nv_fp8_e4m3 v;
      v.__x = codes[j];
      o[j] = __float2bfloat16(float(v) * d + (sum ? sum[c0 + j] * inv_n : 0.0f));
    }
    reinterpret_cast<uint4*>(y)[i] = out;
  }
}

__global__ void add_column_mean_kernel(bf16* __restrict__ y, int64_t count8, int64_t C, const float* __restrict__ sum,
                                       float inv_n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count8; i += int64_t(gridDim.x) * blockDim.x) {
    uint4 raw = reinterpret_cast<const uint4*>(y)[i];
    bf16* v = reinterpret_cast<bf16*>(&raw);
    const int64_t c0 = (i * 8) % C;
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = __float2bfloat16(__bfloat162float(v[j]) + sum[c0 + j] * inv_n);
    reinterpret_cast<uint4*>(y)[i] = raw;
  }
}

// Eight output elements per thread, as fp8_to_bf16_kernel: the chunks' weights come from
// their lse at (head, row), the same for the D / 8 threads of one head's row (cached reads).
__global__ void merge_fp8_parts_kernel(Fp8Parts p, int64_t Lq, int64_t H, int64_t D, const float* __restrict__ descale,
                                       const float* __restrict__ sum, float inv_n, bf16* __restrict__ y,
                                       float* __restrict__ lse_out) {
  const int64_t C = H * D, count8 = Lq * C / 8;
  const float d = p.codes ? descale[0] : 1.0f;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count8; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = (i * 8) / C, c0 = (i * 8) % C, h = c0 / D;
    float l[kFp8MaxKvChunks];
    float m = -INFINITY;
#pragma unroll
    for (int c = 0; c < kFp8MaxKvChunks; ++c)
      if (c < p.count) {
        l[c] = p.lse[c][h * Lq + row];
        m = fmaxf(m, l[c]);
      }
    float total = 0.0f;
#pragma unroll
    for (int c = 0; c < kFp8MaxKvChunks; ++c)
      if (c < p.count) {
        l[c] = __expf(l[c] - m);
        total += l[c];
      }
    const float inv_total = 1.0f / total;
    float acc[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[j] = 0.0f;
#pragma unroll
    for (int c = 0; c < kFp8MaxKvChunks; ++c) {
      if (c >= p.count) break;
      const float w = l[c] * inv_total * d;
      if (p.codes) {
        const uint2 raw = reinterpret_cast<const uint2*>(p.out[c])[i];
        const uint8_t* codes = reinterpret_cast<const uint8_t*>(&raw);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          __nv_fp8_e4m3 v;
          v.__x = codes[j];
          acc[j] += w * float(v);
        }
      } else {
        const uint4 raw = reinterpret_cast<const uint4*>(p.out[c])[i];
        const bf16* b = reinterpret_cast<const bf16*>(&raw);
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[j] += w * __bfloat162float(b[j]);
      }
    }
    uint4 out;
    bf16* o = reinterpret_cast<bf16*>(&out);
#pragma unroll
    for (int j = 0; j < 8; ++j) o[j] = __float2bfloat16(acc[j] + (sum ? sum[c0 + j] * inv_n : 0.0f));
    reinterpret_cast<uint4*>(y)[i] = out;
    if (lse_out && c0 % D == 0) lse_out[h * Lq + row] = m + __logf(total);
  }
}

unsigned grid_for(int64_t items) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((items + kThreads - 1) / kThreads, 132 * 16)));
}

}  // namespace

int64_t fp8_quantise_workspace_floats(int count, int64_t C, int64_t max_stat_rows) {
  return int64_t(count) * stat_chunks(C, max_stat_rows) * 3 * C;
}

void quantise_fp8_operands(const Fp8Operand* ops, int count, int64_t C, int64_t D, float* amax, float* workspace,
                           cudaStream_t s) {
  if (count < 1 || count > kMaxOperands) fail("quantise_fp8_operands: 1 to 3 operands, got ", count);
  if (C <= 0 || D <= 0 || D % 8 != 0 || C % D != 0) fail("quantise_fp8_operands: C ", C, " and D ", D);
  Batch b;
  int64_t max_stat = 0, max_count8 = 0;
  for (int i = 0; i < count; ++i) {
    b.op[i] = ops[i];
    if (ops[i].rotate && !fp8_rotates(D)) fail("quantise_fp8_operands: no rotation for head size ", D);
    if ((ops[i].smooth && !ops[i].sum) || !ops[i].x || !ops[i].y || !ops[i].descale)
      fail("quantise_fp8_operands: operand ", i, " lacks a buffer");
    max_stat = std::max(max_stat, ops[i].stat_rows);
    max_count8 = std::max(max_count8, ops[i].rows * C / 8);
  }
  RL_CUDA(cudaMemsetAsync(amax, 0, size_t(count) * sizeof(float), s));
  const float norm = 1.0f / std::sqrt(static_cast<float>(D));  // as backend/fp8_rotation.h
  const int64_t chunks = stat_chunks(C, max_stat), per = std::max<int64_t>(1, (max_stat + chunks - 1) / chunks);
  const unsigned tiles = static_cast<unsigned>((C + 8 * kStatThreads - 1) / (8 * kStatThreads));
  stats_kernel<<<dim3(tiles, unsigned(chunks), unsigned(count)), kStatThreads, 0, s>>>(b, C, D, norm, per, chunks,
                                                                                       workspace);
  RL_CUDA_LAUNCH();
  reduce_kernel<<<dim3(unsigned((C + kThreads - 1) / kThreads), unsigned(count)), kThreads, 0, s>>>(
      b, C, chunks, workspace, reinterpret_cast<unsigned*>(amax));
  RL_CUDA_LAUNCH();
  quantise_kernel<<<dim3(grid_for(std::max<int64_t>(max_count8, 1)), 1, unsigned(count)), kThreads, 0, s>>>(b, C, D, norm,
                                                                                                          amax);
  RL_CUDA_LAUNCH();
}

void fp8_to_bf16(const uint8_t* x, int64_t count, const float* descale, int64_t C, const float* sum, int64_t n,
                 bf16* y, cudaStream_t s) {
  if (count <= 0) return;
  if (count % 8 != 0 || C % 8 != 0) fail("fp8_to_bf16: ", count, " elements of rows of ", C, " (multiples of 8)");
  fp8_to_bf16_kernel<<<grid_for(count / 8), kThreads, 0, s>>>(x, count / 8, descale, C, sum,
                                                              n > 0 ? 1.0f / float(n) : 0.0f, y);
  RL_CUDA_LAUNCH();
}

void add_column_mean(bf16* y, int64_t count, int64_t C, const float* sum, int64_t n, cudaStream_t s) {
  if (count <= 0 || !sum) return;
  if (count % 8 != 0 || C % 8 != 0) fail("add_column_mean: ", count, " elements of rows of ", C, " (multiples of 8)");
  add_column_mean_kernel<<<grid_for(count / 8), kThreads, 0, s>>>(y, count / 8, C, sum, n > 0 ? 1.0f / float(n) : 0.0f);
  RL_CUDA_LAUNCH();
}

void merge_fp8_parts(const Fp8Parts& parts, int64_t Lq, int64_t H, int64_t D, const float* descale, const float* sum,
                     int64_t n, bf16* y, float* lse_out, cudaStream_t s) {
  if (parts.count < 1 || parts.count > kFp8MaxKvChunks)
    fail("merge_fp8_parts: 1 to ", kFp8MaxKvChunks, " parts, got ", parts.count);
  if (D <= 0 || D % 8 != 0 || H <= 0) fail("merge_fp8_parts: ", H, " heads of ", D, " (multiples of 8)");
  const int64_t count8 = Lq * H * D / 8;
  if (count8 <= 0) return;
  merge_fp8_parts_kernel<<<grid_for(count8), kThreads, 0, s>>>(parts, Lq, H, D, descale, sum,
                                                                n > 0 ? 1.0f / float(n) : 0.0f, y, lse_out);
  RL_CUDA_LAUNCH();
}

}  // namespace raylight::cuda
