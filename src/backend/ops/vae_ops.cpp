// The checked public ops of vae_ops.h.
#include "backend/ops/vae_ops.h"

#include "backend/backend.h"
#include "backend/ops/op_checks.h"
#include "core/error.h"

namespace raylight {

Backend& VaeOps::backend() { return static_cast<Backend&>(*this); }

Tensor VaeOps::conv3d(const Tensor& x, const Tensor& past, const Tensor& w, const Tensor& b, const Conv3dSpec& s) {
  Backend& be = backend();
  checks::activation(be, x, 4, "[T, C, H, W]", "conv3d", "input");
  const int64_t T = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  int64_t Tp = 0;
  if (past.defined()) {
    checks::activation(be, past, 4, "[T, C, H, W]", "conv3d", "past");
    if (past.dim(1) != C || past.dim(2) != H || past.dim(3) != W)
      fail("conv3d: past frames ", shape_str(past.shape()), " do not match input ", shape_str(x.shape()));
    Tp = past.dim(0);
  }
  checks::weight(be, w, "conv3d");
  if (w.ndim() != 5 || w.dim(1) != C)
    fail("conv3d: weight ", shape_str(w.shape()), " does not fit input ", shape_str(x.shape()), " (expected [Cout, ",
         C, ", kt, kh, kw])");
  if (C < 1 || w.dim(0) < 1 || w.dim(2) < 1 || w.dim(3) < 1 || w.dim(4) < 1)
    fail("conv3d: weight ", shape_str(w.shape()), " has an empty dimension");
  checks::vector(be, b, w.dim(0), "conv3d", "bias");
  if (s.stride_t < 1 || s.stride_h < 1 || s.stride_w < 1 || s.pad_t < 0 || s.pad_top < 0 || s.pad_bottom < 0 ||
      s.pad_left < 0 || s.pad_right < 0)
    fail("conv3d: strides must be >= 1 and paddings >= 0");
  const int64_t tin = s.pad_t + Tp + T, hin = H + s.pad_top + s.pad_bottom, win = W + s.pad_left + s.pad_right;
  if (tin < w.dim(2) || hin < w.dim(3) || win < w.dim(4))
    fail("conv3d: kernel ", shape_str(w.shape()), " is larger than the padded input (", tin, " frames, ", hin, "x",
         win, ")");
  const Shape out{(tin - w.dim(2)) / s.stride_t + 1, w.dim(0), (hin - w.dim(3)) / s.stride_h + 1,
                  (win - w.dim(4)) / s.stride_w + 1};
  checks::mul(checks::mul(out[0], out[1], "conv3d"), checks::mul(out[2], out[3], "conv3d"), "conv3d");
  checks::mul(checks::mul(C, w.dim(2), "conv3d"), checks::mul(w.dim(3), w.dim(4), "conv3d"), "conv3d");
  if (shape_numel(out) == 0) return be.empty(out);
  if (H == 0 || W == 0) fail("conv3d: input ", shape_str(x.shape()), " has no pixels");
  return conv3d_impl(x, past, w, b, s);
}

Tensor VaeOps::channel_rms_norm(const Tensor& x, const Tensor& gamma, bool silu) {
  Backend& be = backend();
  checks::activation(be, x, 4, "[T, C, H, W]", "channel_rms_norm", "input");
  checks::vector(be, gamma, x.dim(1), "channel_rms_norm", "gamma", true);
  if (x.numel() == 0) return be.empty(x.shape());
  return channel_rms_norm_impl(x, gamma, silu);
}

Tensor VaeOps::upsample_nearest2x(const Tensor& x) {
  Backend& be = backend();
  checks::activation(be, x, 4, "[T, C, H, W]", "upsample_nearest2x", "input");
  const Shape out{x.dim(0), x.dim(1), checks::mul(2, x.dim(2), "upsample_nearest2x"),
                  checks::mul(2, x.dim(3), "upsample_nearest2x")};
  checks::mul(checks::mul(out[0], out[1], "upsample_nearest2x"), checks::mul(out[2], out[3], "upsample_nearest2x"),
              "upsample_nearest2x");
  if (x.numel() == 0) return be.empty(out);
  return upsample_nearest2x_impl(x);
}

}  // namespace raylight
