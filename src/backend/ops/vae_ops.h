// Ops of the image and video VAEs over frame-major clips [T, C, H, W] (an image batch is
// [N, C, H, W]: frames and images are the same thing to these ops). Frames are rows of
// [T, C*H*W], so slice_rows / concat_rows move them.
//
// Wan's VAE: causal 3-D convolutions with a cache of past frames, and its RMS norm over
// channels. Image VAEs (Flux, Qwen-Image, SD3) and HunyuanVideo's: 2-D convolutions,
// GroupNorm (per image, or over all frames of a clip), nearest 2x upsampling.
//
// A mixin of Backend (backend.h): each public op checks its operands once (vae_ops.cpp),
// then calls the backend's protected *_impl, which only computes. conv2d has no impl of its
// own: it is conv3d with one-frame kernels, so every backend gets it from its conv3d.
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
  struct Conv2dSpec {
    int stride_h = 1, stride_w = 1;
    int pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  };
  struct GroupNormSpec {
    int64_t groups = 32;
    float eps = 1e-6f;
    bool silu = false;         // SiLU after the affine (a VAE resblock's norm -> SiLU)
    bool over_frames = false;  // statistics over all T frames (HunyuanVideo), not per frame
  };

  // Cross-correlation (PyTorch Conv3d) of the frames (pad_t zeros, past, x) with
  // w [Cout, Cin, kt, kh, kw] plus b [Cout] (or undefined): x [T, Cin, H, W], past
  // [Tp, Cin, H, W] or undefined (earlier frames, e.g. a causal conv's cache)
  // -> [T', Cout, H', W'].
  Tensor conv3d(const Tensor& x, const Tensor& past, const Tensor& w, const Tensor& b,
                const Conv3dSpec& spec);
  // PyTorch Conv2d of each image of x [N, Cin, H, W] with w [Cout, Cin, kh, kw] plus b
  // [Cout] (or undefined) -> [N, Cout, H', W']; padding may differ per side.
  Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dSpec& spec);
  // x [T, C, H, W]: each pixel's C-vector divided by its L2 norm (at least 1e-12), times
  // sqrt(C) * gamma [C] (the Wan VAE's RMS_norm); then SiLU when `silu`.
  Tensor channel_rms_norm(const Tensor& x, const Tensor& gamma, bool silu);
  // PyTorch GroupNorm of x [T, C, H, W]: channels in spec.groups equal groups, each
  // normalised by its mean and biased variance over (its channels, H, W) of one frame (or of
  // all frames), then * weight[c] + bias[c] (each [C] or undefined), then SiLU if asked.
  Tensor group_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const GroupNormSpec& spec);
  // x [T, C, H, W] -> [T, C, 2H, 2W], every pixel repeated 2x2 (nearest / nearest-exact).
  Tensor upsample_nearest2x(const Tensor& x);

 protected:
  ~VaeOps() = default;
  virtual Tensor conv3d_impl(const Tensor& x, const Tensor& past, const Tensor& w, const Tensor& b,
                             const Conv3dSpec& spec) = 0;
  virtual Tensor channel_rms_norm_impl(const Tensor& x, const Tensor& gamma, bool silu) = 0;
  virtual Tensor group_norm_impl(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                 const GroupNormSpec& spec) = 0;
  virtual Tensor upsample_nearest2x_impl(const Tensor& x) = 0;

 private:
  friend class Backend;  // the only class that derives from this one
  VaeOps() = default;
  Backend& backend();
};

}  // namespace raylight
