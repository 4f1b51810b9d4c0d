#include "backend/cuda/fp8_quantise.h"

#include <cuda_fp8.h>

#include <algorithm>
#include <atomic>
#include <cmath>

#include "backend/cuda/cuda_check.h"
#include "backend/fp8_rotation.h"
#include "core/error.h"

namespace raylight::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kPassThreads = 128;  // statistics and quantisation blocks
constexpr int kMaxOperands = 3;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kGroups = 4;               // groups of 8 neighbouring columns a thread holds
constexpr int kValues = 8 * kGroups;     // so 32 values per thread

// Which columns a thread holds: L neighbouring lanes ("lanes", a power of two up to 32) share
// a segment of 32 L columns, lane l holding columns seg + 8 l + 8 L g + j (group g < 4, j < 8).
// For a rotated operand a segment is one head (L = D / 32; D = 16 puts two heads in one
// thread), so a head's index bits 0-2 are j, the next log2(L) the lane, the top two g: the
// rotation's butterflies run in-thread except the log2(L) stages across lanes (2 for D = 128,
// where 8 values per thread needed 4). Every load and store is L x 16 (8) contiguous bytes.
struct Plan {
  int lanes = 1;
  int64_t threads_per_row = 0;  // T: a multiple of lanes
  int64_t row_step = 1;         // quantisation: rows between one thread's rows
  float inv_n = 0.0f;           // 1 / stat_rows as the host rounds it (0 unless smoothing)
};

struct Batch {
  Fp8Operand op[kMaxOperands];
  Plan plan[kMaxOperands];
};

Plan plan_for(const Fp8Operand& o, int64_t C, int64_t D) {
  Plan p;
  if (o.rotate) {
    p.lanes = static_cast<int>(std::max<int64_t>(1, D / 32));
  } else {  // the widest segment that tiles a row exactly (C % 8 == 0: one lane always does)
    p.lanes = 32;
    while (p.lanes > 1 && C % (32 * p.lanes) != 0) p.lanes /= 2;
  }
  p.threads_per_row = (C + 32 * p.lanes - 1) / (32 * p.lanes) * p.lanes;
  p.inv_n = (o.smooth && o.stat_rows > 0) ? 1.0f / static_cast<float>(o.stat_rows) : 0.0f;
  return p;
}

// The first column of each group this thread holds, and whether the group is in the row.
struct Columns {
  int col[kGroups];
  bool ok[kGroups];
  unsigned mask;  // the lanes sharing this thread's segment (the rotation's shuffles)
};

__device__ __forceinline__ Columns columns_of(const Plan& p, int64_t tcol, int64_t C) {
  Columns c;
  const int L = p.lanes, seg = static_cast<int>(tcol / L), l = static_cast<int>(tcol % L);
#pragma unroll
  for (int g = 0; g < kGroups; ++g) {
    c.col[g] = seg * 32 * L + 8 * l + 8 * L * g;
    c.ok[g] = c.col[g] < C;
  }
  const int lane = threadIdx.x & 31;
  c.mask = L == 32 ? kFullMask : ((1u << L) - 1u) << (lane & ~(L - 1));
  return c;
}

// S's signs for this thread's values as XOR masks on the packed bf16 pairs (word k holds
// values 2k and 2k + 1, the odd one high): a sign flip is exact, so flipping the bit before
// widening is the same as negating the float after it, and costs one op per two values.
struct Signs {
  uint32_t w[kValues / 2];
};

__device__ __forceinline__ Signs signs_of(const Columns& c, int64_t D, bool rotate) {
  Signs f;
#pragma unroll
  for (int k = 0; k < kValues / 2; ++k) {
    f.w[k] = 0;
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int i = 2 * k + e;  // D: a power of two where the operand rotates
      if (rotate && fp8_rotation_flips((c.col[i / 8] + i % 8) & (D - 1))) f.w[k] |= 0x8000u << (16 * e);
    }
  }
  return f;
}

// A thread's rows come through shared memory, kStages - 1 rows ahead (cp.async: in flight
// without holding registers, which the 32 values and their statistics need). Each thread
// reads back only what it copied, so no barrier; a slot is refilled one iteration after it
// was read (its values already used). Slot [stage][group][thread] keeps a warp's 16-byte
// accesses on distinct banks. Groups outside the row are zero-filled.
constexpr int kStages = 5;

struct RowPipe {
  uint4* slots;  // [kStages][kGroups][kPassThreads]

  __device__ __forceinline__ uint4* slot(int stage, int g) const {
    return slots + (stage * kGroups + g) * kPassThreads + threadIdx.x;
  }
  // Issues the copy of row `row` into `stage` when `live`, and always commits a group, so
  // that take() counts groups alike in every iteration.
  __device__ __forceinline__ void issue(const bf16* row, const Columns& c, int stage, bool live) const {
    if (live) {
#pragma unroll
      for (int g = 0; g < kGroups; ++g) {
        const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(slot(stage, g)));
        const bf16* src = c.ok[g] ? row + c.col[g] : row;
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(c.ok[g] ? 16 : 0)
                     : "memory");
      }
    }
    asm volatile("cp.async.commit_group;\n" ::: "memory");
  }
  // The oldest of the kStages - 1 groups in flight is complete: its row, read into raw
  // ("memory": the reads stay after the wait).
  __device__ __forceinline__ void take(int stage, uint4 raw[kGroups]) const {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(kStages - 2) : "memory");
#pragma unroll
    for (int g = 0; g < kGroups; ++g) raw[g] = *slot(stage, g);
  }
};

// bf16 pairs to floats, with S's signs.
__device__ __forceinline__ void unpack(const uint4 raw[kGroups], const Signs& f, float v[kValues]) {
#pragma unroll
  for (int g = 0; g < kGroups; ++g) {
    const uint32_t w[4] = {raw[g].x, raw[g].y, raw[g].z, raw[g].w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const uint32_t x = w[k] ^ f.w[4 * g + k];
      v[8 * g + 2 * k] = __uint_as_float(x << 16);
      v[8 * g + 2 * k + 1] = __uint_as_float(x & 0xffff0000u);
    }
  }
}

__device__ __forceinline__ void butterflies(float v[kValues], int h) {
#pragma unroll
  for (int i = 0; i < kValues; ++i)
    if ((i & h) == 0) {
      const float a = v[i], b = v[i + h];
      v[i] = a + b;
      v[i + h] = a - b;
    }
}

// backend/fp8_rotation.h's H S x / sqrt(D) (the signs already applied by unpack) in its
// order: the butterfly stages by ascending index bit (j's three in-thread, the lanes' across
// lanes, then g's in-thread), then the 1 / sqrt(D) multiply, so every value rounds as in
// fp8_rotate_head. All lanes of c.mask must call it. norm: 1 / sqrt(D) as the host rounds it
// (fast-math device division would differ in the last bit).
__device__ __forceinline__ void rotate(float v[kValues], const Columns& c, int L, int64_t D, float norm) {
  butterflies(v, 1);
  butterflies(v, 2);
  butterflies(v, 4);
  const int lane = threadIdx.x & 31;
  for (int m = 1; m < L; m <<= 1) {
    // The lower lane of a pair forms v + p, the upper p - v: one fma with an exact product,
    // rounded once as the add is.
    const float sign = (lane & m) ? -1.0f : 1.0f;
#pragma unroll
    for (int i = 0; i < kValues; ++i) v[i] = __fmaf_rn(sign, v[i], __shfl_xor_sync(c.mask, v[i], m));
  }
  if (8 * L < D) butterflies(v, 8);  // column stride 8 L
  if (16 * L < D) butterflies(v, 16);
#pragma unroll
  for (int i = 0; i < kValues; ++i) v[i] *= norm;
}

// Partial statistics of one chunk of stat rows: ws[operand][chunk][0 | 1 | 2][C] = sum, max,
// min (of rotated values where the operand rotates), each thread 32 columns of every row of
// its chunk, in row order (RowPipe keeps kStages - 1 rows in flight).
__global__ void __launch_bounds__(kPassThreads) stats_kernel(Batch b, int64_t C, int64_t D, float norm,
                                                             int64_t rows_per_chunk, int64_t chunks,
                                                             float* __restrict__ ws) {
  const Fp8Operand& o = b.op[blockIdx.y];
  const Plan& p = b.plan[blockIdx.y];
  const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t chunk = g / p.threads_per_row;
  if (chunk >= chunks) return;  // whole segments: threads_per_row is a multiple of the lanes
  const Columns c = columns_of(p, g % p.threads_per_row, C);
  const Signs flips = signs_of(c, D, o.rotate);
  const int64_t r0 = chunk * rows_per_chunk, r1 = min(o.stat_rows, r0 + rows_per_chunk);
  float s[kValues], mx[kValues], mn[kValues];
#pragma unroll
  for (int i = 0; i < kValues; ++i) {
    s[i] = 0.0f;
    mx[i] = -INFINITY;
    mn[i] = INFINITY;
  }
  __shared__ uint4 smem[kStages * kGroups * kPassThreads];
  const RowPipe pipe{smem};
  for (int k = 0; k + 1 < kStages; ++k) pipe.issue(o.x + (r0 + k) * C, c, k, r0 + k < r1);
  int stage = 0;
  for (int64_t r = r0; r < r1; ++r, stage = (stage + 1) % kStages) {  // uniform over a segment's lanes
    uint4 raw[kGroups];
    pipe.take(stage, raw);
    const int64_t ahead = r + kStages - 1;
    pipe.issue(o.x + ahead * C, c, (stage + kStages - 1) % kStages, ahead < r1);
    float v[kValues];
    unpack(raw, flips, v);
    if (o.rotate) rotate(v, c, p.lanes, D, norm);
#pragma unroll
    for (int i = 0; i < kValues; ++i) {
      s[i] += v[i];
      mx[i] = fmaxf(mx[i], v[i]);
      mn[i] = fminf(mn[i], v[i]);
    }
  }
  float* out = ws + (int64_t(blockIdx.y) * chunks + chunk) * 3 * C;
#pragma unroll
  for (int k = 0; k < kGroups; ++k) {
    if (!c.ok[k]) continue;
#pragma unroll
    for (int q = 0; q < 2; ++q) {
      const int i = 8 * k + 4 * q, col = c.col[k] + 4 * q;
      *reinterpret_cast<float4*>(out + col) = make_float4(s[i], s[i + 1], s[i + 2], s[i + 3]);
      *reinterpret_cast<float4*>(out + C + col) = make_float4(mx[i], mx[i + 1], mx[i + 2], mx[i + 3]);
      *reinterpret_cast<float4*>(out + 2 * C + col) = make_float4(mn[i], mn[i + 1], mn[i + 2], mn[i + 3]);
    }
  }
}

// Threads of `kernel` the device holds at once (its blocks of kPassThreads), looked up once
// per device and kernel (every attention call asks). which: 0 statistics, 1 quantise.
template <typename Kernel>
int64_t resident_threads(Kernel kernel, int which) {
  constexpr int kDevices = 64;
  static std::atomic<int64_t> cache[2][kDevices];  // zero: not looked up yet
  int dev = 0;
  RL_CUDA(cudaGetDevice(&dev));
  std::atomic<int64_t>* known = cache[which];
  if (dev >= 0 && dev < kDevices && known[dev].load(std::memory_order_relaxed) > 0) return known[dev];
  int sms = 0, blocks = 0;
  RL_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  RL_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, kPassThreads, 0));
  const int64_t n = int64_t(std::max(sms, 1)) * std::max(blocks, 1) * kPassThreads;
  if (dev >= 0 && dev < kDevices) known[dev].store(n, std::memory_order_relaxed);
  return n;
}

// A row takes ceil(C / 32) threads whatever the plan (a rotated plan's segments tile C
// exactly, an unrotated one's too or has one lane per segment).
int64_t threads_per_row(int64_t C) { return (C + 31) / 32; }

// The chunks of stat rows each operand's statistics are split into: as many as the device
// holds threads for at once (one wave, every thread about as many rows), at least 32 rows
// each, at most 256. Chunks of consecutive rows summed in order.
int64_t stat_chunks(int count, int64_t C, int64_t max_stat_rows) {
  const int64_t by_device = resident_threads(stats_kernel, 0) / (count * threads_per_row(C));
  const int64_t by_rows = (max_stat_rows + 31) / 32;
  return std::max<int64_t>(1, std::min<int64_t>({by_device, by_rows, 256}));
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
    // The mean quantise_kernel subtracts, rounded as it rounds it (no fma contraction), so the
    // amax is the largest |value - mean| that it quantises, exactly.
    const float mean = o.smooth ? __fmul_rn(s, b.plan[blockIdx.y].inv_n) : 0.0f;
    a = isfinite(s) ? fmaxf(0.0f, fmaxf(__fsub_rn(mx, mean), __fsub_rn(mean, mn))) : INFINITY;
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

// y = e4m3(clamp((rotate(x) - mean) * scale)) for every row of operand blockIdx.y: each
// thread holds 32 columns (their signs and means in registers) for rows r0, r0 + step, ...
// mean = sum * inv_n and both roundings explicit (no contraction), so the host can repeat
// the arithmetic bit for bit (tests/cuda/test_cuda_fp8_quantise.cpp).
__global__ void __launch_bounds__(kPassThreads, 3) quantise_kernel(Batch b, int64_t C, int64_t D, float norm,
                                                                const float* __restrict__ amax) {
  const Fp8Operand& o = b.op[blockIdx.y];
  const Plan& p = b.plan[blockIdx.y];
  const float scale = scale_of(amax[blockIdx.y]);
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    o.descale[0] = 1.0f / scale;
    if (o.scale) o.scale[0] = scale;
  }
  if (!o.y) return;  // statistics and scales only
  const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t r0 = g / p.threads_per_row;
  if (r0 >= p.row_step || r0 >= o.rows) return;  // whole segments, as in stats_kernel
  const Columns c = columns_of(p, g % p.threads_per_row, C);
  const Signs flips = signs_of(c, D, o.rotate);
  float mean[kValues];
#pragma unroll
  for (int k = 0; k < kGroups; ++k)
#pragma unroll
    for (int q = 0; q < 2; ++q) {
      float4 s4 = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (o.smooth && c.ok[k]) s4 = *reinterpret_cast<const float4*>(o.sum + c.col[k] + 4 * q);
      const int i = 8 * k + 4 * q;
      mean[i] = __fmul_rn(s4.x, p.inv_n);
      mean[i + 1] = __fmul_rn(s4.y, p.inv_n);
      mean[i + 2] = __fmul_rn(s4.z, p.inv_n);
      mean[i + 3] = __fmul_rn(s4.w, p.inv_n);
    }
  __shared__ uint4 smem[kStages * kGroups * kPassThreads];
  const RowPipe pipe{smem};
  const int64_t step = p.row_step;
  for (int k = 0; k + 1 < kStages; ++k) pipe.issue(o.x + (r0 + k * step) * C, c, k, r0 + k * step < o.rows);
  int stage = 0;
  for (int64_t r = r0; r < o.rows; r += step, stage = (stage + 1) % kStages) {  // uniform over a segment's lanes
    uint4 raw[kGroups];
    pipe.take(stage, raw);
    const int64_t ahead = r + (kStages - 1) * step;
    pipe.issue(o.x + ahead * C, c, (stage + kStages - 1) % kStages, ahead < o.rows);
    float v[kValues];
    unpack(raw, flips, v);
    if (o.rotate) rotate(v, c, p.lanes, D, norm);
    uint8_t* row = o.y + r * C;
#pragma unroll
    for (int k = 0; k < kGroups; ++k) {
      uint32_t w[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        uint32_t pair[2];
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int i = 8 * k + 4 * h + 2 * e;
          const float2 f = make_float2(__fmul_rn(__fsub_rn(v[i], mean[i]), scale),
                                       __fmul_rn(__fsub_rn(v[i + 1], mean[i + 1]), scale));
          pair[e] = __nv_cvt_float2_to_fp8x2(f, __NV_SATFINITE, __NV_E4M3);
        }
        w[h] = pair[0] | (pair[1] << 16);
      }
      if (c.ok[k]) *reinterpret_cast<uint2*>(row + c.col[k]) = make_uint2(w[0], w[1]);
    }
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
  if (count < 1 || count > kMaxOperands || C <= 0) fail("fp8_quantise_workspace_floats: ", count, " operands of ", C);
  return int64_t(count) * stat_chunks(count, C, max_stat_rows) * 3 * C;
}

void quantise_fp8_operands(const Fp8Operand* ops, int count, int64_t C, int64_t D, float* amax, float* workspace,
                           cudaStream_t s) {
  if (count < 1 || count > kMaxOperands) fail("quantise_fp8_operands: 1 to 3 operands, got ", count);
  if (C <= 0 || D <= 0 || D % 8 != 0 || C % D != 0 || C > (int64_t(1) << 30))
    fail("quantise_fp8_operands: C ", C, " and D ", D);
  Batch b;
  int64_t max_stat = 0, max_tpr = 0;
  for (int i = 0; i < count; ++i) {
    b.op[i] = ops[i];
    if (ops[i].rotate && !fp8_rotates(D)) fail("quantise_fp8_operands: no rotation for head size ", D);
    if ((ops[i].smooth && !ops[i].sum) || !ops[i].x || !ops[i].descale)
      fail("quantise_fp8_operands: operand ", i, " lacks a buffer");
    if (ops[i].rows < 0 || ops[i].stat_rows < 0 || ops[i].stat_rows > ops[i].rows)
      fail("quantise_fp8_operands: operand ", i, " has ", ops[i].stat_rows, " stat rows of ", ops[i].rows);
    b.plan[i] = plan_for(ops[i], C, D);
    if (b.plan[i].threads_per_row != threads_per_row(C)) fail("quantise_fp8_operands: plan of ", C, " columns");
    max_stat = std::max(max_stat, ops[i].stat_rows);
    max_tpr = std::max(max_tpr, b.plan[i].threads_per_row);
  }
  // Quantisation: each thread takes every row_step-th row, row_step such that the threads
  // of the operands it writes make two waves of the device (equal rows per thread: no ragged
  // tail; an operand without y only writes its scales).
  const int64_t quant_threads = 2 * resident_threads(quantise_kernel, 1);
  int64_t max_quant_threads = 1, written = 0;
  for (int i = 0; i < count; ++i) written += ops[i].y != nullptr;
  for (int i = 0; i < count; ++i) {
    Plan& p = b.plan[i];
    const int64_t share = quant_threads / (std::max<int64_t>(written, 1) * p.threads_per_row);
    p.row_step = std::max<int64_t>(1, std::min(ops[i].rows, share));
    max_quant_threads = std::max(max_quant_threads, p.row_step * p.threads_per_row);
  }
  RL_CUDA(cudaMemsetAsync(amax, 0, size_t(count) * sizeof(float), s));
  const float norm = 1.0f / std::sqrt(static_cast<float>(D));  // as backend/fp8_rotation.h
  const int64_t chunks = stat_chunks(count, C, max_stat), per = std::max<int64_t>(1, (max_stat + chunks - 1) / chunks);
  const unsigned stat_blocks = static_cast<unsigned>((chunks * max_tpr + kPassThreads - 1) / kPassThreads);
  stats_kernel<<<dim3(stat_blocks, unsigned(count)), kPassThreads, 0, s>>>(b, C, D, norm, per, chunks, workspace);
  RL_CUDA_LAUNCH();
  reduce_kernel<<<dim3(unsigned((C + kThreads - 1) / kThreads), unsigned(count)), kThreads, 0, s>>>(
      b, C, chunks, workspace, reinterpret_cast<unsigned*>(amax));
  RL_CUDA_LAUNCH();
  const unsigned quant_blocks = static_cast<unsigned>((max_quant_threads + kPassThreads - 1) / kPassThreads);
  quantise_kernel<<<dim3(quant_blocks, unsigned(count)), kPassThreads, 0, s>>>(b, C, D, norm, amax);
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
