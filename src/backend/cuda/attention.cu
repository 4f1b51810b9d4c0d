// Flash attention (forward) for bf16 with head_dim 64 or 128, written for mma.sync tensor
// cores (m16n8k16, fp32 accumulation), which run on every GPU since Ampere and on Hopper.
//
// Why this shape: each warp owns 16 query rows, keeps its Q fragments and its output
// accumulator in registers for the whole key loop, and streams 64-key tiles of K and V
// through shared memory with cp.async double buffering, so global memory is read once per
// block. Scores become probabilities in registers (online softmax in base 2, the scale
// folded into one FMA) and feed the P·V product directly as A fragments: no score matrix
// ever exists in memory. Rows of K/V beyond the valid keys are zero-filled on load and
// their scores set to -inf, so masking costs nothing for full tiles and cannot make NaN.
// The log-sum-exp (natural log) is written per (head, query) for Ring attention.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <string>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

namespace raylight::cuda {
namespace {

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldsm_x4(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}

__device__ __forceinline__ void ldsm_x4_t(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}

__device__ __forceinline__ void mma_bf16(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

template <int D, int NW>
struct Cfg {
  static constexpr int BM = 16 * NW, BN = 64, LD = D + 8, THREADS = 32 * NW;
  static constexpr size_t smem_bytes = size_t(BM + 4 * BN) * LD * sizeof(bf16);
};

// Copies `rows` rows of D bf16 (global row stride rs) into shared memory with row stride
// LD; rows at or past `limit` are zero-filled (their address is clamped to stay valid).
template <int D, int NW>
__device__ __forceinline__ void load_tile(bf16* dst, const bf16* src, int64_t rs, int r0, int rows,
                                          int limit) {
  using C = Cfg<D, NW>;
  constexpr int CH = D / 8;
  for (int i = threadIdx.x; i < rows * CH; i += C::THREADS) {
    const int r = i / CH, c = i % CH, gr = r0 + r;
    const int safe = gr < limit ? gr : (limit > 0 ? limit - 1 : 0);
    cp_async16(smem_u32(dst + r * C::LD + c * 8), src + safe * rs + c * 8, gr < limit ? 16 : 0);
  }
}

template <int D, int NW>
__global__ void __launch_bounds__(32 * NW, NW == 4 ? 2 : 1)
    flash_fwd_kernel(const bf16* __restrict__ q, const bf16* __restrict__ k,
                     const bf16* __restrict__ v, bf16* __restrict__ o, float* __restrict__ lse,
                     int Lq, int H, int k_valid, float scale_log2) {
  using C = Cfg<D, NW>;
  constexpr int BM = C::BM, BN = C::BN, LD = C::LD, KS = D / 16, DT = D / 8, NT = BN / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);
  bf16* sK = sQ + BM * LD;
  bf16* sV = sK + 2 * BN * LD;

  const int h = blockIdx.y, m0 = blockIdx.x * BM;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t rs = int64_t(H) * D;
  const bf16* qh = q + h * D;
  const bf16* kh = k + h * D;
  const bf16* vh = v + h * D;
  const int n_tiles = (k_valid + BN - 1) / BN;

  load_tile<D, NW>(sQ, qh, rs, m0, BM, Lq);
  load_tile<D, NW>(sK, kh, rs, 0, BN, k_valid);
  load_tile<D, NW>(sV, vh, rs, 0, BN, k_valid);
  cp_async_commit();

  float acc[DT][4];
#pragma unroll
  for (int i = 0; i < DT; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};
  uint32_t qf[KS][4];
  const int mi = lane / 8, ri = lane % 8;  // which 8x8 matrix this lane addresses, and its row

  for (int j = 0; j < n_tiles; ++j) {
    const int st = j & 1;
    if (j + 1 < n_tiles) {
      load_tile<D, NW>(sK + (st ^ 1) * BN * LD, kh, rs, (j + 1) * BN, BN, k_valid);
      load_tile<D, NW>(sV + (st ^ 1) * BN * LD, vh, rs, (j + 1) * BN, BN, k_valid);
    }
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    if (j == 0) {
#pragma unroll
      for (int kk = 0; kk < KS; ++kk) {
        const bf16* p = sQ + (warp * 16 + (mi & 1) * 8 + ri) * LD + kk * 16 + (mi >> 1) * 8;
        ldsm_x4(smem_u32(p), qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3]);
      }
    }
    const bf16* kt = sK + st * BN * LD;
    const bf16* vt = sV + st * BN * LD;

    float s[NT][4];
#pragma unroll
    for (int i = 0; i < NT; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KS; ++kk) {
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {
        uint32_t b0, b1, b2, b3;
        const bf16* p = kt + (np * 16 + (mi >> 1) * 8 + ri) * LD + kk * 16 + (mi & 1) * 8;
        ldsm_x4(smem_u32(p), b0, b1, b2, b3);
        mma_bf16(s[2 * np], qf[kk], b0, b1);
        mma_bf16(s[2 * np + 1], qf[kk], b2, b3);
      }
    }
    if ((j + 1) * BN > k_valid) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const int key = j * BN + nt * 8 + 2 * t;
        if (key >= k_valid) s[nt][0] = s[nt][2] = -INFINITY;
        if (key + 1 >= k_valid) s[nt][1] = s[nt][3] = -INFINITY;
      }
    }
    // Online softmax; rows g (elements 0, 1) and g + 8 (elements 2, 3) of this warp's 16.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(row_max[r], mx * scale_log2);
      const float alpha = exp2f(row_max[r] - m_new);
      row_max[r] = m_new;
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        s[nt][2 * r] = exp2f(fmaf(s[nt][2 * r], scale_log2, -m_new));
        s[nt][2 * r + 1] = exp2f(fmaf(s[nt][2 * r + 1], scale_log2, -m_new));
        sum += s[nt][2 * r] + s[nt][2 * r + 1];
      }
      row_sum[r] = row_sum[r] * alpha + sum;
#pragma unroll
      for (int dt = 0; dt < DT; ++dt) {
        acc[dt][2 * r] *= alpha;
        acc[dt][2 * r + 1] *= alpha;
      }
    }
    // O += P V, P taken straight from the score registers as A fragments.
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      uint32_t a[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                       pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                       pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t b0, b1, b2, b3;
        const bf16* p = vt + (kk * 16 + (mi & 1) * 8 + ri) * LD + dp * 16 + (mi >> 1) * 8;
        ldsm_x4_t(smem_u32(p), b0, b1, b2, b3);
        mma_bf16(acc[2 * dp], a, b0, b1);
        mma_bf16(acc[2 * dp + 1], a, b2, b3);
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = row_sum[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const int row = m0 + warp * 16 + g + 8 * r;
    if (row < Lq) {
      const float inv = 1.f / l;
      bf16* orow = o + row * rs + h * D;
#pragma unroll
      for (int dt = 0; dt < DT; ++dt)
        *reinterpret_cast<uint32_t*>(orow + dt * 8 + 2 * t) =
            pack_bf16(acc[dt][2 * r] * inv, acc[dt][2 * r + 1] * inv);
      if (lse && t == 0) lse[int64_t(h) * Lq + row] = (row_max[r] + log2f(l)) * 0.6931471805599453f;
    }
  }
}

template <int D, int NW>
void launch(const bf16* q, const bf16* k, const bf16* v, bf16* o, float* lse, int64_t Lq,
            int64_t H, int64_t k_valid, cudaStream_t s) {
  using C = Cfg<D, NW>;
  static bool configured = false;
  if (!configured) {
    RL_CUDA(cudaFuncSetAttribute(flash_fwd_kernel<D, NW>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(C::smem_bytes)));
    configured = true;
  }
  const float scale_log2 = static_cast<float>(1.4426950408889634 / std::sqrt(static_cast<double>(D)));
  dim3 grid(static_cast<unsigned>((Lq + C::BM - 1) / C::BM), static_cast<unsigned>(H));
  flash_fwd_kernel<D, NW><<<grid, C::THREADS, C::smem_bytes, s>>>(
      q, k, v, o, lse, static_cast<int>(Lq), static_cast<int>(H), static_cast<int>(k_valid), scale_log2);
  RL_CUDA_LAUNCH();
}

// Warps per block: 8 (128 query rows share each K/V tile) unless RAYLIGHT_FA_WARPS=4.
int warps_per_block() {
  static const int w = [] {
    const char* e = std::getenv("RAYLIGHT_FA_WARPS");
    return e && std::string(e) == "4" ? 4 : 8;
  }();
  return w;
}

}  // namespace

bool flash_attention_supports(int64_t D) { return D == 64 || D == 128; }

void flash_attention(const bf16* q, const bf16* k, const bf16* v, bf16* o, float* lse, int64_t Lq,
                     int64_t Lk, int64_t H, int64_t D, int64_t k_valid, cudaStream_t s) {
  if (Lq == 0) return;
  const int64_t valid = k_valid < 0 ? Lk : std::min(k_valid, Lk);
  if (valid <= 0) fail("attention: every key is masked");
  if (Lq * H * D >= (int64_t(1) << 31) || Lk * H * D >= (int64_t(1) << 31))
    fail("attention: tensors over 2^31 elements are not supported");
  const bool eight = warps_per_block() == 8;
  if (D == 128) eight ? launch<128, 8>(q, k, v, o, lse, Lq, H, valid, s) : launch<128, 4>(q, k, v, o, lse, Lq, H, valid, s);
  else if (D == 64) eight ? launch<64, 8>(q, k, v, o, lse, Lq, H, valid, s) : launch<64, 4>(q, k, v, o, lse, Lq, H, valid, s);
  else fail("attention: head_dim ", D, " is not supported by the CUDA kernel (64 or 128)");
}

}  // namespace raylight::cuda
