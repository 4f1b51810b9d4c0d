// Launchers of the video-VAE kernels (video_ops.cu): im2col for conv3d (the product itself
// runs through cuBLASLt), per-row bias, channel RMS norm over [T, C, H, W] clips, nearest
// 2x upsampling, and the row softmax of the GEMM-based attention for head sizes the fused
// kernels do not cover. bf16 in and out, fp32 arithmetic.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace raylight::cuda {

struct Im2colGeom {
  int64_t tp, cin, h, w;          // past frames, channels, input height / width
  int64_t kt, kh, kw;             // kernel
  int64_t st, sh, sw;             // strides
  int64_t pad_t, pad_top, pad_left;
  int64_t ho, wo;                 // output plane
};

// col[k, p - y0*wo] for k < kp (taps k >= Cin*kt*kh*kw are zero) and the output pixels of
// rows [y0, y1) of output frame `to`, rows of `ldp` >= (y1 - y0)*wo (the tail zeroed): the
// tap of input frame to*st + a - pad_t among (past, x). Pixel-major, so the GEMM reads it
// as a [K, N] operand.
void im2col3d_rows(const __nv_bfloat16* x, const __nv_bfloat16* past, const Im2colGeom& g, int64_t to,
                   int64_t y0, int64_t y1, int64_t kp, int64_t ldp, __nv_bfloat16* col, cudaStream_t s);
// y[r, c] += b[r] over rows x cols (rows = Cout of one frame).
void add_row_bias(__nv_bfloat16* y, const __nv_bfloat16* b, int64_t rows, int64_t cols, int64_t frames,
                  cudaStream_t s);
// x [T, C, S]: per (t, s) the C-vector * sqrt(C) / max(|v|, 1e-12) * gamma[c], then SiLU.
void channel_rms_norm(const __nv_bfloat16* x, const __nv_bfloat16* gamma, __nv_bfloat16* y, int64_t T,
                      int64_t C, int64_t S, bool silu, cudaStream_t s);
// x [N, H, W] -> y [N, 2H, 2W].
void upsample_nearest2x(const __nv_bfloat16* x, __nv_bfloat16* y, int64_t N, int64_t H, int64_t W,
                        cudaStream_t s);
// In place over s [rows, cols] (already scaled scores): softmax over the first `valid`
// columns, zeros beyond; lse[r] = log sum exp (nullable).
void softmax_rows(__nv_bfloat16* s, float* lse, int64_t rows, int64_t cols, int64_t valid, cudaStream_t st);

}  // namespace raylight::cuda
