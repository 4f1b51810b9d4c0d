// Device versions of the sequence-parallel helpers (Ulysses head packing, Ring merge by
// log-sum-exp), so USP attention never round-trips through the host. The merge keeps lse
// in fp32: it is a log-domain quantity that bf16 would round by up to 1/16.
#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

namespace raylight::cuda {
namespace {

__global__ void swap_leading_kernel(const bf16* x, bf16* y, int64_t a, int64_t b, int64_t c) {
  const int64_t n = a * b * c;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = i % c, j = (i / c) % b, r = i / (b * c);
    y[(j * a + r) * c + k] = x[i];
  }
}

// One warp per (token, head) row.
__global__ void merge_kernel(bf16* out, float* lse, const bf16* part, const float* part_lse,
                             int64_t L, int64_t H, int64_t D) {
  const int64_t row = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= L * H) return;
  const int64_t i = row / H, h = row % H;
  const float la = lse[h * L + i], lb = part_lse[h * L + i];
  const float m = fmaxf(la, lb);
  const float wa = expf(la - m), wb = expf(lb - m), inv = 1.f / (wa + wb);
  bf16* o = out + row * D;
  const bf16* p = part + row * D;
  for (int64_t d = lane; d < D; d += 32)
    o[d] = __float2bfloat16_rn((wa * __bfloat162float(o[d]) + wb * __bfloat162float(p[d])) * inv);
  __syncwarp();
  if (lane == 0) lse[h * L + i] = m + logf(wa + wb);
}

}  // namespace

void swap_leading(const bf16* x, bf16* y, int64_t a, int64_t b, int64_t c, cudaStream_t s) {
  const int64_t n = a * b * c;
  if (n == 0) return;
  swap_leading_kernel<<<static_cast<int>(std::min<int64_t>((n + 255) / 256, 132 * 32)), 256, 0, s>>>(x, y, a, b, c);
  RL_CUDA_LAUNCH();
}

void merge_attention(bf16* out, float* lse, const bf16* part, const float* part_lse, int64_t L,
                     int64_t H, int64_t D, cudaStream_t s) {
  if (L * H == 0) return;
  merge_kernel<<<static_cast<int>((L * H * 32 + 255) / 256), 256, 0, s>>>(out, lse, part, part_lse, L, H, D);
  RL_CUDA_LAUNCH();
}

}  // namespace raylight::cuda
