// Ops of the image and video VAEs over frame-major clips [T, C, H, W] (an image batch is
// [N, C, H, W]: frames and images are the same thing to these ops). Frames are rows of
// [T, C*H*W], so slice_rows / concat_rows move them.
//
// Wan's VAE: causal 3-D convolutions with a cache of past frames, its RMS norm over
// channels, nearest 2x upsampling.
//
// A mixin of Backend (backend.h): each public op checks its operands once (vae_ops.cpp),
// then calls the backend's protected *_impl, which only computes.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace raylight {

class Backend;

class VaeOps {
 public:
  struct Conv3dSpec {
    int stride_t = 1, stride_h = 1, stride_w = 1;
    int pad_t = 0;  // zero frames in front of (past, x); never any behind (causal)
    int pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;  // zeros around each frame
  };
  // Cross-correlation (PyTorch Conv3d) of the frames (pad_t zeros, past, x) with
  // w [Cout, Cin, kt, kh, kw] plus b [Cout] (or undefined): x [T, Cin, H, W], past
  // [Tp, Cin, H, W] or undefined (earlier frames, e.g. a causal conv's cache)
  // -> [T', Cout, H', W'].
  Tensor conv3d(const Tensor& x, const Tensor& past, const Tensor& w, const Tensor& b,
                const Conv3dSpec& spec);
  // x [T, C, H, W]: each pixel's C-vector divided by its L2 norm (at least 1e-12), times
  // sqrt(C) * gamma [C] (the Wan VAE's RMS_norm); then SiLU when `silu`.
  Tensor channel_rms_norm(const Tensor& x, const Tensor& gamma, bool silu);
  // x [T, C, H, W] -> [T, C, 2H, 2W], every pixel repeated 2x2 (nearest / nearest-exact).
  Tensor upsample_nearest2x(const Tensor& x);

 protected:
  ~VaeOps() = default;
  virtual Tensor conv3d_impl(const Tensor& x, const Tensor& past, const Tensor& w, const Tensor& b,
                             const Conv3dSpec& spec) = 0;
  virtual Tensor channel_rms_norm_impl(const Tensor& x, const Tensor& gamma, bool silu) = 0;
  virtual Tensor upsample_nearest2x_impl(const Tensor& x) = 0;

 private:
  friend class Backend;  // the only class that derives from this one
  VaeOps() = default;
  Backend& backend();
};

}  // namespace raylight
