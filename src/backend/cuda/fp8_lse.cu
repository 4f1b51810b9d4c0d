// fp8_lse_add_k_mean (fp8_lse.h): a block per (head, 256 query rows). The block first builds
// the head's k mean, rotated back and divided by sqrt(D), in shared memory: each of D threads
// sums one row of the Hadamard matrix against the rotated mean (D^2 multiply-adds, <= 64 K,
// cheaper than a shared-memory butterfly's barriers at these sizes). Then a warp per query
// row: 8-byte loads of q (4 bf16), fp32 products, a shuffle sum, one lse element updated. It
// reads q once (2 bytes per element), only for calls that ask for the lse (Ring's blocks).
#include "backend/cuda/fp8_lse.h"

#include "backend/cuda/cuda_check.h"
#include "backend/fp8_rotation.h"
#include "core/error.h"

namespace raylight::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kRowsPerBlock = 256;
constexpr int kMaxD = 256;

__global__ void fp8_lse_add_k_mean_kernel(const bf16* __restrict__ q, int64_t Lq, int64_t H, int D,
                                          const float* __restrict__ k_sum, float inv_n, bool rotated,
                                          float* __restrict__ lse) {
  __shared__ float mean[kMaxD];  // the head's k mean (unrotated) / sqrt(D)
  __shared__ float rot[kMaxD];   // as the quantisation saw it
  const int64_t h = blockIdx.y;
  const float inv_sqrt_d = rsqrtf(static_cast<float>(D));
  for (int d = threadIdx.x; d < D; d += kThreads) rot[d] = __fmul_rn(k_sum[h * D + d], inv_n);
  __syncthreads();
  for (int d = threadIdx.x; d < D; d += kThreads) {
    float m = rot[d];
    if (rotated) {  // (S H / sqrt(D)) rot: H[d][j] = (-1)^popcount(d & j)
      float acc = 0.0f;
      for (int j = 0; j < D; ++j) acc += (__popc(d & j) & 1) ? -rot[j] : rot[j];
      m = (fp8_rotation_flips(d) ? -acc : acc) * inv_sqrt_d;
    }
    mean[d] = m * inv_sqrt_d;
  }
  __syncthreads();
  const int lane = threadIdx.x % 32;
  const int64_t first = int64_t(blockIdx.x) * kRowsPerBlock;
  const int64_t last = min(first + kRowsPerBlock, Lq);
#pragma unroll 4
  for (int64_t i = first + threadIdx.x / 32; i < last; i += kWarps) {
    const uint2* row = reinterpret_cast<const uint2*>(q + (i * H + h) * D);  // 4 bf16 a load
    float acc = 0.0f;
    for (int p = lane; p < D / 4; p += 32) {
      const uint2 raw = row[p];
      const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.x));
      const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.y));
      const float* m = mean + 4 * p;
      acc = fmaf(a.x, m[0], fmaf(a.y, m[1], fmaf(b.x, m[2], fmaf(b.y, m[3], acc))));
    }
#pragma unroll
    for (int o = 16; o > 0; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) lse[h * Lq + i] += acc;
  }
}

}  // namespace

void fp8_lse_add_k_mean(const bf16* q, int64_t Lq, int64_t H, int64_t D, const float* k_sum, int64_t n, bool rotated,
                        float* lse, cudaStream_t s) {
  if (D < 4 || D % 4 != 0 || D > kMaxD)
    fail("fp8_lse_add_k_mean: head size ", D, " is not a multiple of 4 up to ", kMaxD);
  if (n < 1) fail("fp8_lse_add_k_mean: a mean over ", n, " keys");
  if (rotated && !fp8_rotates(D)) fail("fp8_lse_add_k_mean: head size ", D, " is never rotated");
  if (reinterpret_cast<uintptr_t>(q) % 8 != 0) fail("fp8_lse_add_k_mean: q is not 8-byte aligned");
  if (Lq == 0 || H == 0) return;
  const int64_t blocks = (Lq + kRowsPerBlock - 1) / kRowsPerBlock;
  if (blocks > 0x7fffffff || H > 65535) fail("fp8_lse_add_k_mean: ", Lq, " rows x ", H, " heads exceed one launch");
  const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(H));
  fp8_lse_add_k_mean_kernel<<<grid, kThreads, 0, s>>>(q, Lq, H, static_cast<int>(D), k_sum,
                                                      1.0f / static_cast<float>(n), rotated, lse);
  RL_CUDA_LAUNCH();
}

}  // namespace raylight::cuda
