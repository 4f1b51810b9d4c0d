// The checked public ops of vae_ops.h. conv2d is conv3d with one-frame kernels: each image
// of the batch is a frame, the weight gains a time axis of 1 (a view), no frame padding.
#include "backend/ops/vae_ops.h"

#include <cmath>

#include "backend/backend.h"
#include "backend/ops/op_checks.h"
#include "core/error.h"

namespace raylight {

Backend& VaeOps::backend() { return static_cast<Backend&>(*this); }

namespace {

// Checks a convolution's weight, bias and geometry for an input of T frames [C, H, W] after
// Tp past frames; returns the output shape.
Shape conv3d_shape(const Backend& be, int64_t T, int64_t C, int64_t H, int64_t W, int64_t Tp, const Tensor& w,
                   const Tensor& b, const VaeOps::Conv3dSpec& s, const char* op) {
  checks::weight(be, w, op);
  if (w.ndim() != 5 || w.dim(1) != C)
    fail(op, ": weight ", shape_str(w.shape()), " does not fit ", C, " input channels (expected [Cout, ", C,
         ", kt, kh, kw])");
  if (C < 1 || w.dim(0) < 1 || w.dim(2) < 1 || w.dim(3) < 1 || w.dim(4) < 1)
    fail(op, ": weight ", shape_str(w.shape()), " has an empty dimension");
  checks::vector(be, b, w.dim(0), op, "bias");
  if (s.stride_t < 1 || s.stride_h < 1 || s.stride_w < 1 || s.pad_t < 0 || s.pad_top < 0 || s.pad_bottom < 0 ||
      s.pad_left < 0 || s.pad_right < 0)
    fail(op, ": strides must be >= 1 and paddings >= 0");
  const int64_t tin = s.pad_t + Tp + T, hin = H + s.pad_top + s.pad_bottom, win = W + s.pad_left + s.pad_right;
  if (tin < w.dim(2) || hin < w.dim(3) || win < w.dim(4))
    fail(op, ": kernel ", shape_str(w.shape()), " is larger than the padded input (", tin, " frames, ", hin, "x", win,
         ")");
  const Shape out{(tin - w.dim(2)) / s.stride_t + 1, w.dim(0), (hin - w.dim(3)) / s.stride_h + 1,
                  (win - w.dim(4)) / s.stride_w + 1};
  checks::mul(checks::mul(out[0], out[1], op), checks::mul(out[2], out[3], op), op);
  checks::mul(checks::mul(C, w.dim(2), op), checks::mul(w.dim(3), w.dim(4), op), op);
  return out;
}

}  // namespace

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
  const Shape out = conv3d_shape(be, T, C, H, W, Tp, w, b, s, "conv3d");
  if (shape_numel(out) == 0) return be.empty(out);
  if (H == 0 || W == 0) fail("conv3d: input ", shape_str(x.shape()), " has no pixels");
  return conv3d_impl(x, past, w, b, s);
}

Tensor VaeOps::conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dSpec& s) {
  Backend& be = backend();
  checks::activation(be, x, 4, "[N, C, H, W]", "conv2d", "input");
  checks::weight(be, w, "conv2d");  // before the reshape: a missing weight is named as such
  if (w.ndim() != 4 || w.dim(1) != x.dim(1))
    fail("conv2d: weight ", shape_str(w.shape()), " does not fit input ", shape_str(x.shape()), " (expected [Cout, ",
         x.dim(1), ", kh, kw])");
  Conv3dSpec s3;
  s3.stride_h = s.stride_h, s3.stride_w = s.stride_w;
  s3.pad_top = s.pad_top, s3.pad_bottom = s.pad_bottom, s3.pad_left = s.pad_left, s3.pad_right = s.pad_right;
  const Tensor w5 = w.reshape({w.dim(0), w.dim(1), 1, w.dim(2), w.dim(3)});
  const Shape out = conv3d_shape(be, 1, x.dim(1), x.dim(2), x.dim(3), 0, w5, b, s3, "conv2d");
  if (x.dim(0) == 0 || shape_numel(out) == 0) return be.empty({x.dim(0), out[1], out[2], out[3]});
  if (x.dim(2) == 0 || x.dim(3) == 0) fail("conv2d: input ", shape_str(x.shape()), " has no pixels");
  return conv3d_impl(x, {}, w5, b, s3);
}

Tensor VaeOps::channel_rms_norm(const Tensor& x, const Tensor& gamma, bool silu) {
  Backend& be = backend();
  checks::activation(be, x, 4, "[T, C, H, W]", "channel_rms_norm", "input");
  checks::vector(be, gamma, x.dim(1), "channel_rms_norm", "gamma", true);
  if (x.numel() == 0) return be.empty(x.shape());
  return channel_rms_norm_impl(x, gamma, silu);
}

Tensor VaeOps::group_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const GroupNormSpec& spec) {
  Backend& be = backend();
  checks::activation(be, x, 4, "[T, C, H, W]", "group_norm", "input");
  const int64_t C = x.dim(1);
  if (spec.groups < 1 || C % spec.groups != 0)
    fail("group_norm: ", C, " channels do not split into ", spec.groups, " groups");
  if (!(spec.eps >= 0.0f) || !std::isfinite(spec.eps)) fail("group_norm: eps ", spec.eps, " is not a finite value >= 0");
  checks::vector(be, weight, C, "group_norm", "weight");
  checks::vector(be, bias, C, "group_norm", "bias");
  if (x.numel() == 0) return be.empty(x.shape());
  return group_norm_impl(x, weight, bias, spec);
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
