// Token layout kernels: rotary embedding (in place, one thread per 8 channels of one
// token and head) and patchify / unpatchify (pure index permutations, one thread per
// output element so writes are coalesced; these run once per forward).
#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/kernels.h"

namespace raylight::cuda {
namespace {

template <int V>
__global__ void rope_kernel(bf16* x, const float* __restrict__ table, int64_t L, int H, int D) {
  const int chunks = D / V;
  const int64_t n = L * H * chunks;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(i % chunks);
    const int64_t lh = i / chunks, l = lh / H;
    bf16* p = x + lh * D + c * V;
    const float* t = table + l * D + c * V;  // (cos, sin) per pair: D floats per token
    float a[V];
    load_v<V>(p, a);
#pragma unroll
    for (int j = 0; j < V; j += 2) {
      const float cs = t[j], sn = t[j + 1], re = a[j], im = a[j + 1];
      a[j] = re * cs - im * sn;
      a[j + 1] = re * sn + im * cs;
    }
    store_v<V>(p, a);
  }
}

__global__ void patchify_kernel(const bf16* x, bf16* y, int64_t C, int64_t F, int64_t H, int64_t W,
                                int pt, int ph, int pw) {
  const int64_t gf = F / pt, gh = H / ph, gw = W / pw, vol = pt * ph * pw, feat = C * vol;
  const int64_t n = gf * gh * gw * feat;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i / feat, k = i % feat;
    const int64_t f = t / (gh * gw), h = (t / gw) % gh, w = t % gw;
    const int64_t c = k / vol, a = (k / (ph * pw)) % pt, b = (k / pw) % ph, e = k % pw;
    y[i] = x[((c * F + f * pt + a) * H + h * ph + b) * W + w * pw + e];
  }
}

template <typename T>
__global__ void unpatchify_kernel(const T* tok, T* y, int64_t gf, int64_t gh, int64_t gw,
                                  int64_t C, int pt, int ph, int pw) {
  const int64_t F = gf * pt, H = gh * ph, W = gw * pw, n = C * F * H * W;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t xw = i % W, xh = (i / W) % H, xf = (i / (W * H)) % F, c = i / (W * H * F);
    const int64_t f = xf / pt, a = xf % pt, h = xh / ph, b = xh % ph, w = xw / pw, e = xw % pw;
    const int64_t t = (f * gh + h) * gw + w;
    y[i] = tok[t * (C * pt * ph * pw) + ((a * ph + b) * pw + e) * C + c];
  }
}

int grid_for(int64_t n) { return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((n + 255) / 256, 132 * 32))); }

}  // namespace

void rope(bf16* x, const float* table, int64_t L, int64_t H, int64_t D, cudaStream_t s) {
  if (L * H == 0) return;
  const bool vec = D % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
  if (vec) rope_kernel<8><<<grid_for(L * H * D / 8), 256, 0, s>>>(x, table, L, H, D);
  else rope_kernel<2><<<grid_for(L * H * D / 2), 256, 0, s>>>(x, table, L, H, D);
  RL_CUDA_LAUNCH();
}

void patchify(const bf16* x, bf16* y, int64_t C, int64_t F, int64_t H, int64_t W, int pt, int ph,
              int pw, cudaStream_t s) {
  patchify_kernel<<<grid_for(C * F * H * W), 256, 0, s>>>(x, y, C, F, H, W, pt, ph, pw);
  RL_CUDA_LAUNCH();
}

void unpatchify(const void* t, void* y, bool f32, int64_t gf, int64_t gh, int64_t gw, int64_t C, int pt,
                int ph, int pw, cudaStream_t s) {
  const int grid = grid_for(gf * gh * gw * C * pt * ph * pw);
  if (f32)
    unpatchify_kernel<<<grid, 256, 0, s>>>(static_cast<const float*>(t), static_cast<float*>(y), gf, gh, gw, C, pt,
                                           ph, pw);
  else
    unpatchify_kernel<<<grid, 256, 0, s>>>(static_cast<const bf16*>(t), static_cast<bf16*>(y), gf, gh, gw, C, pt, ph,
                                           pw);
  RL_CUDA_LAUNCH();
}

}  // namespace raylight::cuda
