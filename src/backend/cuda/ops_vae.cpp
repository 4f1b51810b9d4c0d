// The VAE's ops on the CUDA backend (kernels in video_ops.cu and group_norm.cu).
//
// conv3d: per output frame (or band of its rows), a pixel-major im2col scratch [K, pixels]
// (K = Cin*kt*kh*kw padded to a multiple of 8) multiplied by the weight rows [Cout, K]
// through cuBLASLt (fp32 accumulation), so the product lands as the frame's [Cout, pixels]
// plane; the bias is added after. Pixel-major keeps the scratch's reads and writes
// contiguous (the K-major layout ran at 27 TFLOP/s, bound by scattered reads).
#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/group_norm.h"
#include "backend/cuda/ops.h"
#include "backend/cuda/video_kernels.h"

namespace raylight::cuda::op {

Tensor conv3d(Context& ctx, const Tensor& x, const Tensor& past, const Tensor& w, const Tensor& b,
              const Backend::Conv3dSpec& s) {
  const int64_t T = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t Tp = past.defined() ? past.dim(0) : 0;
  const int64_t Co = w.dim(0), kt = w.dim(2), kh = w.dim(3), kw = w.dim(4);
  const bf16* bias = b.defined() ? bp(b) : nullptr;
  const int64_t tin = s.pad_t + Tp + T, hin = H + s.pad_top + s.pad_bottom, win = W + s.pad_left + s.pad_right;
  const int64_t To = (tin - kt) / s.stride_t + 1, Ho = (hin - kh) / s.stride_h + 1,
                Wo = (win - kw) / s.stride_w + 1, P = Ho * Wo;
  const int64_t K = C * kt * kh * kw, Kp = (K + 7) / 8 * 8;
  Context::Scope sc(ctx, kMatmul, 2.0 * To * P * Co * K);
  Tensor wb = w.dtype() == DType::BF16 ? w : ctx.to_bf16(w);
  if (Kp != K) {  // weight rows padded with zeros to the scratch's row length
    Tensor wp = ctx.alloc({Co, Kp}, DType::BF16);
    RL_CUDA(cudaMemsetAsync(wp.raw(), 0, wp.nbytes(), ctx.stream));
    RL_CUDA(cudaMemcpy2DAsync(wp.raw(), Kp * 2, wb.raw(), K * 2, K * 2, Co, cudaMemcpyDeviceToDevice, ctx.stream));
    wb = wp;
  }
  Tensor y = ctx.alloc({To, Co, Ho, Wo}, DType::BF16);
  Im2colGeom g{Tp, C, H, W, kt, kh, kw, s.stride_t, s.stride_h, s.stride_w, s.pad_t, s.pad_top, s.pad_left, Ho, Wo};
  // Rows per product: the scratch holds at most ~128M elements (256 MB); its row length
  // is a multiple of 8 so every operand stays 16-byte aligned.
  const int64_t kMaxScratch = int64_t(128) << 20;
  const int64_t band = std::clamp<int64_t>(kMaxScratch / Kp / Wo, 1, std::min<int64_t>(Ho, 65535));
  const int64_t ldp = (band * Wo + 7) / 8 * 8;
  const bool direct = band == Ho && ldp == P;  // the product can land in the frame itself
  Tensor col = ctx.alloc({Kp, ldp}, DType::BF16);
  Tensor part = direct ? Tensor() : ctx.alloc({Co, ldp}, DType::BF16);
  for (int64_t t = 0; t < To; ++t) {
    bf16* frame = bp(y) + t * Co * P;
    for (int64_t y0 = 0; y0 < Ho; y0 += band) {
      const int64_t y1 = std::min(Ho, y0 + band), n = (y1 - y0) * Wo;
      im2col3d_rows(bp(x), Tp ? bp(past) : nullptr, g, t, y0, y1, Kp, ldp, bp(col), ctx.stream);
      bf16* dst = direct ? frame : bp(part);
      if (!ctx.gemm->run(wb.raw(), DType::BF16, nullptr, col.raw(), DType::BF16, 1.0f, nullptr, dst, Co, ldp, Kp,
                         Epilogue::None, /*w_kn=*/true))
        fail("conv3d: cuBLASLt has no algorithm for ", Co, "x", ldp, "x", Kp);
      if (!direct)
        RL_CUDA(cudaMemcpy2DAsync(frame + y0 * Wo, P * 2, dst, ldp * 2, n * 2, Co, cudaMemcpyDeviceToDevice,
                                  ctx.stream));
    }
  }
  if (bias) add_row_bias(bp(y), bias, Co, P, To, ctx.stream);
  return y;
}

Tensor channel_rms_norm(Context& ctx, const Tensor& x, const Tensor& gamma, bool silu) {
  Context::Scope sc(ctx, kOther);
  Tensor y = ctx.alloc(x.shape(), DType::BF16);
  cuda::channel_rms_norm(bp(x), bp(gamma), bp(y), x.dim(0), x.dim(1), x.dim(2) * x.dim(3), silu, ctx.stream);
  return y;
}

Tensor group_norm(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b, const Backend::GroupNormSpec& spec) {
  const GroupNormGeom g{x.dim(0), x.dim(1), x.dim(2) * x.dim(3), spec.groups, spec.over_frames};
  Context::Scope sc(ctx, kOther);
  Tensor scratch = ctx.alloc({group_norm_scratch_floats(g)}, DType::F32);
  Tensor y = ctx.alloc(x.shape(), DType::BF16);
  cuda::group_norm(bp(x), w.defined() ? bp(w) : nullptr, b.defined() ? bp(b) : nullptr, bp(y), g, spec.eps, spec.silu,
                   scratch.data<float>(), ctx.stream);
  return y;
}

Tensor upsample_nearest2x(Context& ctx, const Tensor& x) {
  Context::Scope sc(ctx, kOther);
  Tensor y = ctx.alloc({x.dim(0), x.dim(1), 2 * x.dim(2), 2 * x.dim(3)}, DType::BF16);
  cuda::upsample_nearest2x(bp(x), bp(y), x.dim(0) * x.dim(1), x.dim(2), x.dim(3), ctx.stream);
  return y;
}

}  // namespace raylight::cuda::op
