// Kernels of the video VAE on the CUDA backend (see video_kernels.h). The conv3d's product
// is a cuBLASLt GEMM over an im2col scratch built here one output frame (or a band of its
// rows) at a time, so the scratch stays bounded whatever the clip size.
#include <algorithm>

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

// col[k, (yo - y0) * wo + xo]: blocks along y are taps k (decoded once per block), threads
// along the band's pixels, 8 per thread written as one 16-byte store (rows of `ldp`, a
// multiple of 8; the tail past the band's pixels is written as zeros). Reads of one input
// row are contiguous and reused by neighbouring taps from cache.
__global__ void im2col_rows_kernel(const bf16* __restrict__ x, const bf16* __restrict__ past, Im2colGeom g,
                                   int64_t to, int64_t y0, int64_t rows, int64_t ldp, bf16* __restrict__ col) {
  const int k = blockIdx.y, wo = int(g.wo);
  const int K = int(g.cin * g.kt * g.kh * g.kw);
  const int64_t used = rows * wo;
  const bf16* plane = nullptr;
  int i = 0, j = 0;
  if (k < K) {
    int r = k;
    j = r % int(g.kw); r /= int(g.kw);
    i = r % int(g.kh); r /= int(g.kh);
    const int a = r % int(g.kt);
    const int ci = r / int(g.kt);
    const int64_t f = to * g.st + a - g.pad_t;
    if (f >= 0) plane = (f < g.tp ? past + f * g.cin * g.h * g.w : x + (f - g.tp) * g.cin * g.h * g.w) + ci * g.h * g.w;
  }
  bf16* out = col + int64_t(k) * ldp;
  const bf16 zero = __float2bfloat16(0.f);
  for (int64_t e0 = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 8; e0 < ldp;
       e0 += int64_t(gridDim.x) * blockDim.x * 8) {
    __align__(16) bf16 v[8];
    int yr = int(e0 / wo), xo = int(e0 - int64_t(yr) * wo);
    const int64_t yy = (y0 + yr) * g.sh + i - g.pad_top, xx = int64_t(xo) * g.sw + j - g.pad_left;
    if (plane && xo + 8 <= wo && e0 + 8 <= used && g.sw == 1 && yy >= 0 && yy < g.h && xx >= 0 &&
        xx + 8 <= g.w) {  // the common case: 8 neighbours inside one input row
      const bf16* src = plane + yy * g.w + xx;
      #pragma unroll
      for (int u = 0; u < 8; ++u) v[u] = src[u];
      *reinterpret_cast<uint4*>(out + e0) = *reinterpret_cast<const uint4*>(v);
      continue;
    }
    #pragma unroll
    for (int u = 0; u < 8; ++u) {
      bf16 val = zero;
      if (plane && e0 + u < used) {
        const int64_t yy = (y0 + yr) * g.sh + i - g.pad_top, xx = int64_t(xo) * g.sw + j - g.pad_left;
        if (yy >= 0 && yy < g.h && xx >= 0 && xx < g.w) val = plane[yy * g.w + xx];
      }
      v[u] = val;
      if (++xo == wo) { xo = 0; ++yr; }
    }
    *reinterpret_cast<uint4*>(out + e0) = *reinterpret_cast<const uint4*>(v);
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
  bf16* row = s + blockIdx.x * cols;
  float m = -INFINITY;
  for (int64_t c = threadIdx.x; c < valid; c += blockDim.x) m = fmaxf(m, __bfloat162float(row[c]));
  m = block_max(m, scratch);
  float sum = 0.f;
  for (int64_t c = threadIdx.x; c < valid; c += blockDim.x) sum += __expf(__bfloat162float(row[c]) - m);
  sum = block_sum(sum, scratch);
  const float inv = 1.f / sum;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    row[c] = __float2bfloat16(c < valid ? __expf(__bfloat162float(row[c]) - m) * inv : 0.f);
  if (lse && threadIdx.x == 0) lse[blockIdx.x] = m + logf(sum);
}

}  // namespace

void im2col3d_rows(const bf16* x, const bf16* past, const Im2colGeom& g, int64_t to, int64_t y0, int64_t y1,
                   int64_t kp, int64_t ldp, bf16* col, cudaStream_t s) {
  const int64_t rows = y1 - y0;
  if (rows <= 0 || kp == 0) return;
  if (kp > 65535) fail("im2col3d_rows: ", kp, " taps exceed the launch grid");
  if (ldp % 8 || ldp < rows * g.wo) fail("im2col3d_rows: row length ", ldp, " is not a multiple of 8 >= ", rows * g.wo);
  const int threads = 256;
  const dim3 grid(unsigned(std::min<int64_t>((ldp / 8 + threads - 1) / threads, 1024)), unsigned(kp));
  im2col_rows_kernel<<<grid, threads, 0, s>>>(x, past, g, to, y0, rows, ldp, col);
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
