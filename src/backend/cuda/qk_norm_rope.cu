// q/k RMSNorm + RoPE + the q/k/v split in one pass (qkv_norm_rope, norm_rope). One block per
// (row, part): part 0 is q, 1 is k, 2 is v (a plain copy out of the fused product). The
// row's heads * head_dim values are read once into shared memory as fp32; warps sum the
// squares of a head each (or the block sums the whole row), then each thread writes V
// consecutive values normed, weighted and turned by the row's (cos, sin). Replaces a
// transpose, two norms over rows of one head (one block of 32 threads each) and two RoPE
// passes, and writes straight into the attention buffers at a row offset.
#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/kernels.h"

namespace raylight::cuda {
namespace {

struct Part {
  const bf16* src;  // row 0 of this part's values
  const bf16* w;    // norm weight; null: copy (v)
  bf16* out;        // row 0 of the output rows
};

struct Args {
  Part part[3];
  int64_t stride;      // elements between source rows
  const float* table;  // (cos, sin) [rows, D/2, 2] for these rows, or null
  int H, D;
  float eps;
  bool per_head;
};

// A part chosen by a uniform branch: indexing the parameter array by blockIdx.y copied it
// to local memory (a 104-byte stack frame per thread).
__device__ __forceinline__ Part part_of(const Args& a) {
  return blockIdx.y == 0 ? a.part[0] : blockIdx.y == 1 ? a.part[1] : a.part[2];
}

template <int V>
__global__ void qk_norm_rope_kernel(Args a) {
  extern __shared__ __align__(16) float row[];  // H*D values, then H inverse norms
  __shared__ float scratch[32];
  const Part p = part_of(a);
  const int64_t r = blockIdx.x;
  const int HD = a.H * a.D;
  const bf16* x = p.src + r * a.stride;
  bf16* o = p.out + r * HD;
  float t[V];
  if (!p.w) {
    for (int c = threadIdx.x * V; c < HD; c += blockDim.x * V) {
      load_v<V>(x + c, t);
      store_v<V>(o + c, t);
    }
    return;
  }
  float* inv = row + HD;
  for (int c = threadIdx.x * V; c < HD; c += blockDim.x * V) {
    load_v<V>(x + c, t);
    store_v<V>(row + c, t);  // 16-byte shared stores when V = 8: no bank conflicts
  }
  __syncthreads();
  if (a.per_head) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (int h = warp; h < a.H; h += warps) {
      float ss = 0.f;
      for (int i = lane; i < a.D; i += 32) {
        const float v = row[h * a.D + i];
        ss += v * v;
      }
      ss = warp_sum(ss);
      if (lane == 0) inv[h] = rsqrtf(ss / a.D + a.eps);
    }
  } else {
    float ss = 0.f;
    for (int c = threadIdx.x; c < HD; c += blockDim.x) ss += row[c] * row[c];
    ss = block_sum(ss, scratch);
    if (threadIdx.x == 0) inv[0] = rsqrtf(ss / HD + a.eps);
  }
  __syncthreads();
  const float* cs = a.table ? a.table + r * a.D : nullptr;
  for (int c = threadIdx.x * V; c < HD; c += blockDim.x * V) {
    const int h = c / a.D, d = c - h * a.D;  // V divides D: a chunk stays in one head
    const float s = inv[a.per_head ? h : 0];
    float w[V], y[V];
    load_v<V>(p.w + (a.per_head ? d : c), w);
    load_v<V>(row + c, y);
#pragma unroll
    for (int j = 0; j < V; ++j) y[j] = y[j] * s * w[j];
    if (cs) {
#pragma unroll
      for (int j = 0; j < V; j += 2) {
        const float co = cs[d + j], sn = cs[d + j + 1], re = y[j], im = y[j + 1];
        y[j] = re * co - im * sn;
        y[j + 1] = re * sn + im * co;
      }
    }
    store_v<V>(o + c, y);
  }
}

// The same op with a row held in registers: each thread loads R chunks of 8 values once, the
// squares are summed by shuffles (per head: the D / 8 neighbouring lanes of a head) or over
// the block (per row), and the thread writes its chunks from registers. No shared-memory copy
// of the row and no idle second pass: Wan 14B's 5,120-value rows (q and k at 32,760 tokens)
// took 0.56 ms per call through the kernel above, about a third of the bandwidth.
// The row is held as its bf16 bytes (4 registers a chunk, not 8 floats) and widened where
// used: at 71 registers a thread (fp32 chunks) an SM held 5 rows of 5,120 and a Wan 14B
// 480p forward spent 21.7 ms here; at 60, 17.8 ms (H200). Taking 8 chunks a thread instead of
// 4 (96-thread blocks, 79 registers) measured 20.7 ms.
template <int R>
__global__ void __launch_bounds__(256) qk_norm_rope_regs_kernel(Args a) {
  constexpr int V = 8;
  __shared__ float scratch[32];
  const Part p = part_of(a);
  const int64_t r = blockIdx.x;
  const int HD = a.H * a.D;
  const bf16* x = p.src + r * a.stride;
  bf16* o = p.out + r * HD;
  uint4 t[R];
  bool has[R];
#pragma unroll
  for (int i = 0; i < R; ++i) {
    const int c = (threadIdx.x + i * blockDim.x) * V;
    has[i] = c < HD;
    t[i] = has[i] ? *reinterpret_cast<const uint4*>(x + c) : make_uint4(0, 0, 0, 0);
  }
  if (!p.w) {
#pragma unroll
    for (int i = 0; i < R; ++i)
      if (has[i]) *reinterpret_cast<uint4*>(o + (threadIdx.x + i * blockDim.x) * V) = t[i];
    return;
  }
  auto widen = [](const uint4& u, float* f) {
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float2 v = __bfloat1622float2(h[k]);
      f[2 * k] = v.x;
      f[2 * k + 1] = v.y;
    }
  };
  float inv[R];
  if (a.per_head) {
    // Lanes of one head are D / 8 consecutive threads (a power of two up to 32, blockDim a
    // multiple of 32), so each chunk's head sum is a butterfly over those lanes.
    const int lanes = a.D / V;
#pragma unroll
    for (int i = 0; i < R; ++i) {
      float f[V], ss = 0.f;
      widen(t[i], f);
#pragma unroll
      for (int j = 0; j < V; ++j) ss += f[j] * f[j];
      for (int m = 1; m < lanes; m <<= 1) ss += __shfl_xor_sync(0xffffffffu, ss, m);
      inv[i] = rsqrtf(ss / a.D + a.eps);
    }
  } else {
    float ss = 0.f;
#pragma unroll
    for (int i = 0; i < R; ++i) {
      float f[V];
      widen(t[i], f);
#pragma unroll
      for (int j = 0; j < V; ++j) ss += f[j] * f[j];
    }
    ss = block_sum(ss, scratch);
    const float s = rsqrtf(ss / HD + a.eps);
#pragma unroll
    for (int i = 0; i < R; ++i) inv[i] = s;
  }
  const float* cs = a.table ? a.table + r * a.D : nullptr;
#pragma unroll
  for (int i = 0; i < R; ++i) {
    if (!has[i]) continue;
    const int c = (threadIdx.x + i * blockDim.x) * V;
    const int d = c % a.D;  // 8 divides D: a chunk stays in one head
    float w[V], y[V];
    widen(t[i], y);
    load_v<V>(p.w + (a.per_head ? d : c), w);
#pragma unroll
    for (int j = 0; j < V; ++j) y[j] = y[j] * inv[i] * w[j];
    if (cs) {
      float cz[V];
      load_v<V>(cs + d, cz);
#pragma unroll
      for (int j = 0; j < V; j += 2) {
        const float re = y[j], im = y[j + 1];
        y[j] = re * cz[j] - im * cz[j + 1];
        y[j + 1] = re * cz[j + 1] + im * cz[j];
      }
    }
    store_v<V>(o + c, y);
  }
}

bool al16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The register kernel when the shapes allow it (8-value chunks, a head's lanes a power of two
// up to 32, rows up to 256 x 8 chunks); false: use the shared-memory kernel. A thread takes
// up to 8 chunks so that a block stays at most 256 threads: several blocks (rows) per SM
// keep enough loads in flight (640 threads of one chunk each ran at one block per SM, its
// registers, and was slower than the shared-memory kernel).
bool launch_regs(const Args& a, int parts, int64_t rows, cudaStream_t s) {
  const int HD = a.H * a.D, lanes = a.D / 8;
  if (a.D % 8 != 0 || lanes > 32 || (lanes & (lanes - 1)) != 0 || (a.table && !al16(a.table))) return false;
  const int chunks = HD / 8;
  int R = 1;
  while (R < 8 && chunks > 256 * R) R *= 2;
  if (chunks > 256 * R) return false;
  const int threads = std::max(32, ((chunks + R - 1) / R + 31) / 32 * 32);
  const dim3 grid(static_cast<unsigned>(rows), parts);
  switch (R) {
    case 1: qk_norm_rope_regs_kernel<1><<<grid, threads, 0, s>>>(a); break;
    case 2: qk_norm_rope_regs_kernel<2><<<grid, threads, 0, s>>>(a); break;
    case 4: qk_norm_rope_regs_kernel<4><<<grid, threads, 0, s>>>(a); break;
    default: qk_norm_rope_regs_kernel<8><<<grid, threads, 0, s>>>(a); break;
  }
  RL_CUDA_LAUNCH();
  return true;
}

template <int V>
void launch(const Args& a, int parts, int64_t rows, cudaStream_t s) {
  const int HD = a.H * a.D;
  const int threads = static_cast<int>(std::clamp<int64_t>((HD / V + 31) / 32 * 32, 32, 512));
  const size_t smem = (static_cast<size_t>(HD) + a.H) * sizeof(float);
  if (smem > 48 * 1024) {
    if (smem > 200 * 1024) fail("qkv_norm_rope: rows of ", HD, " values do not fit the kernel's shared memory");
    static bool raised = false;  // one flag per instantiation
    if (!raised) {
      RL_CUDA(cudaFuncSetAttribute(qk_norm_rope_kernel<V>, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
      raised = true;
    }
  }
  qk_norm_rope_kernel<V><<<dim3(static_cast<unsigned>(rows), parts), threads, smem, s>>>(a);
  RL_CUDA_LAUNCH();
}

}  // namespace

void qk_norm_rope(const QkRows& src, const bf16* q_w, const bf16* k_w, bool per_head, float eps, const float* table,
                  bf16* q, bf16* k, bf16* v, int64_t rows, int64_t H, int64_t D, cudaStream_t s) {
  if (rows == 0 || H * D == 0) return;
  if (rows > 0x7fffffff) fail("qkv_norm_rope: ", rows, " rows are more than one launch takes");
  Args a{};
  int parts = 0;
  a.part[parts++] = {src.q, q_w, q};
  if (src.k) a.part[parts++] = {src.k, k_w, k};
  if (src.v) a.part[parts++] = {src.v, nullptr, v};
  a.stride = src.stride;
  a.table = table;
  a.H = static_cast<int>(H);
  a.D = static_cast<int>(D);
  a.eps = eps;
  a.per_head = per_head;
  bool vec = D % 8 == 0 && src.stride % 8 == 0 && al16(q_w) && (!k_w || al16(k_w));
  for (int i = 0; i < parts; ++i) vec = vec && al16(a.part[i].src) && al16(a.part[i].out);
  if (vec && launch_regs(a, parts, rows, s)) return;
  if (vec) launch<8>(a, parts, rows, s);
  else launch<2>(a, parts, rows, s);
}

}  // namespace raylight::cuda
