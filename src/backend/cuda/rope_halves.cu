// Rotary embedding with pairs (i, i + D/2), PyTorch's rotate_half (Llama, Qwen2.5-VL): one
// thread per (token, head, pair), scalar bf16 accesses. The text encoders it serves have a
// few hundred tokens, so simplicity wins over the vector path of layout.cu's kernel.
#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

namespace raylight::cuda {
namespace {

__global__ void rope_halves_kernel(bf16* x, const float* __restrict__ table, int64_t L, int64_t H, int64_t half) {
  const int64_t n = L * H * half;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e % half, lh = e / half, l = lh / H;
    bf16* a = x + lh * 2 * half + i;
    bf16* b = a + half;
    const float cs = table[(l * half + i) * 2], sn = table[(l * half + i) * 2 + 1];
    const float re = __bfloat162float(*a), im = __bfloat162float(*b);
    *a = __float2bfloat16(re * cs - im * sn);
    *b = __float2bfloat16(re * sn + im * cs);
  }
}

}  // namespace

void rope_halves(bf16* x, const float* table, int64_t L, int64_t H, int64_t D, cudaStream_t s) {
  const int64_t n = L * H * (D / 2);
  if (n == 0) return;
  const int blocks = static_cast<int>(std::min<int64_t>((n + 255) / 256, 132 * 32));
  rope_halves_kernel<<<blocks, 256, 0, s>>>(x, table, L, H, D / 2);
  RL_CUDA_LAUNCH();
}

}  // namespace raylight::cuda
