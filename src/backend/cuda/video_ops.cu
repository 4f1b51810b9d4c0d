// Kernels of the video VAE on the CUDA backend (see video_kernels.h). The conv3d's product
// is a cuBLASLt GEMM over an im2col scratch built here one output frame (or a slice of its
// pixels) at a time, so the scratch stays bounded whatever the clip size.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/video_kernels.h"

namespace raylight::cuda {
namespace {

using bf16 = __nv_bfloat16;

inline unsigned blocks_for(int64_t n, int threads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 65535 * 16 ? (b < 1 ? 1 : b) : 65535 * 16);
}

// One thread per scratch element, k fastest (coalesced writes); index math in 32 bits
// (K, pixels per frame and the plane sizes are far below 2^31), element offsets in 64.
__global__ void im2col_kernel(const bf16* __restrict__ x, const bf16* __restrict__ past, Im2colGeom g,
                              int64_t to, int64_t p0, int64_t np, int64_t ldk, bf16* __restrict__ col) {
  const int K = int(g.cin * g.kt * g.kh * g.kw), kw = int(g.kw), kh = int(g.kh), kt = int(g.kt);
  const int ld = int(ldk), wo = int(g.wo), H = int(g.h), W = int(g.w);
  const int64_t n = np * ldk;
  const int64_t plane = g.h * g.w;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int pr = int(e / ld), k = int(e - int64_t(pr) * ld);
    float v = 0.f;
    if (k < K) {
      const int p = int(p0) + pr, yo = p / wo, xo = p - yo * wo;
      int r = k;
      const int j = r % kw; r /= kw;
      const int i = r % kh; r /= kh;
      const int a = r % kt;
      const int ci = r / kt;
      const int64_t f = to * g.st + a - g.pad_t;
      const int yy = yo * int(g.sh) + i - int(g.pad_top), xx = xo * int(g.sw) + j - int(g.pad_left);
      if (f >= 0 && yy >= 0 && yy < H && xx >= 0 && xx < W) {
        const bf16* src = f < g.tp ? past + (f * g.cin + ci) * plane : x + ((f - g.tp) * g.cin + ci) * plane;
        v = __bfloat162float(src[int64_t(yy) * W + xx]);
      }
    }
    col[e] = __float2bfloat16(v);
  }
}

__global__ void row_bias_kernel(bf16* y, const bf16* b, int64_t rows, int64_t cols, int64_t n) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = (e / cols) % rows;
    y[e] = __float2bfloat16(__bfloat162float(y[e]) + __bfloat162float(b[r]));
  }
}

__global__ void channel_rms_kernel(const bf16* __restrict__ x, const bf16* __restrict__ gamma, bf16* __restrict__ y,
                                   int64_t T, int64_t C, int64_t S, bool silu) {
  const int64_t n = T * S;
  const float root_c = sqrtf(float(C));
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = e / S, s = e - t * S;
    const bf16* xp = x + t * C * S + s;
    float ss = 0.f;
    for (int64_t c = 0; c < C; ++c) {
      const float v = __bfloat162float(xp[c * S]);
      ss += v * v;
    }
    const float inv = root_c / fmaxf(sqrtf(ss), 1e-12f);
    bf16* yp = y + t * C * S + s;
    for (int64_t c = 0; c < C; ++c) {
      float v = __bfloat162float(xp[c * S]) * inv * __bfloat162float(gamma[c]);
      if (silu) v = v / (1.f + __expf(-v));
      yp[c * S] = __float2bfloat16(v);
    }
  }
}

__global__ void upsample_kernel(const bf16* __restrict__ x, bf16* __restrict__ y, int64_t N, int64_t H, int64_t W) {
  const int64_t W2 = 2 * W, n = N * 2 * H * W2;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t xo = e % W2, r = e / W2, yo = r % (2 * H), c = r / (2 * H);
    y[e] = x[(c * H + yo / 2) * W + xo / 2];
  }
}

__global__ void softmax_rows_kernel(bf16* s, float* lse, int64_t cols, int64_t valid) {
  __shared__ float scratch[32];
  __shared__ float bcast;
  bf16* row = s + blockIdx.x * cols;
  float m = -INFINITY;
  for (int64_t c = threadIdx.x; c < valid; c += blockDim.x) m = fmaxf(m, __bfloat162float(row[c]));
  m = warp_max(m);
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  if (lane == 0) scratch[wid] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    float mm = -INFINITY;
    for (int i = 0; i < int(blockDim.x + 31) / 32; ++i) mm = fmaxf(mm, scratch[i]);
    bcast = mm;
  }
  __syncthreads();
  m = bcast;
  __syncthreads();
  float sum = 0.f;
  for (int64_t c = threadIdx.x; c < valid; c += blockDim.x) sum += __expf(__bfloat162float(row[c]) - m);
  sum = block_sum(sum, scratch);
  const float inv = 1.f / sum;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    row[c] = __float2bfloat16(c < valid ? __expf(__bfloat162float(row[c]) - m) * inv : 0.f);
  if (lse && threadIdx.x == 0) lse[blockIdx.x] = m + logf(sum);
}

}  // namespace

void im2col3d(const bf16* x, const bf16* past, const Im2colGeom& g, int64_t to, int64_t p0, int64_t p1,
              int64_t ldk, bf16* col, cudaStream_t s) {
  const int64_t n = (p1 - p0) * ldk;
  if (n == 0) return;
  im2col_kernel<<<blocks_for(n, 256), 256, 0, s>>>(x, past, g, to, p0, p1 - p0, ldk, col);
  RL_CUDA_LAUNCH();
}

void add_row_bias(bf16* y, const bf16* b, int64_t rows, int64_t cols, int64_t frames, cudaStream_t s) {
  const int64_t n = rows * cols * frames;
  if (n == 0) return;
  row_bias_kernel<<<blocks_for(n, 256), 256, 0, s>>>(y, b, rows, cols, n);
  RL_CUDA_LAUNCH();
}

void channel_rms_norm(const bf16* x, const bf16* gamma, bf16* y, int64_t T, int64_t C, int64_t S, bool silu,
                      cudaStream_t s) {
  const int64_t n = T * S;
  if (n == 0) return;
  channel_rms_kernel<<<blocks_for(n, 128), 128, 0, s>>>(x, gamma, y, T, C, S, silu);
  RL_CUDA_LAUNCH();
}

void upsample_nearest2x(const bf16* x, bf16* y, int64_t N, int64_t H, int64_t W, cudaStream_t s) {
  const int64_t n = N * 4 * H * W;
  if (n == 0) return;
  upsample_kernel<<<blocks_for(n, 256), 256, 0, s>>>(x, y, N, H, W);
  RL_CUDA_LAUNCH();
}

void softmax_rows(bf16* s, float* lse, int64_t rows, int64_t cols, int64_t valid, cudaStream_t st) {
  if (rows == 0) return;
  softmax_rows_kernel<<<static_cast<unsigned>(rows), 256, 0, st>>>(s, lse, cols, valid);
  RL_CUDA_LAUNCH();
}

}  // namespace raylight::cuda
