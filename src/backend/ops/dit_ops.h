// Ops of the diffusion transformers (Wan, and the DiTs that share its adaLN design):
// modulation by the timestep embedding and the latent <-> token layout. A mixin of Backend
// (backend.h): each public op checks its operands once (dit_ops.cpp), then calls the
// backend's protected *_impl, which only computes.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace raylight {

class Backend;

struct PatchSize {
  int t = 1, h = 2, w = 2;
  int volume() const { return t * h * w; }
};

class DitOps {
 public:
  // x * (1 + scale) + shift with shift/scale [D] broadcast over the rows of x [.., D].
  Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale);
  // modulate(layer_norm(x, {}, {}, eps), shift, scale): the DiT's adaLN, one pass. x and
  // shift/scale may be fp32 (backend.h, "precise operands"); the result is the compute
  // dtype, or fp32 when f32_out (x, shift and scale fp32 then: a head kept in fp32).
  Tensor layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                             bool f32_out = false);
  // [C, F, H, W] -> [tokens, C*pt*ph*pw], features ordered (c, pt, ph, pw) like a Conv3d
  // weight, tokens ordered (f, h, w).
  Tensor patchify(const Tensor& x, PatchSize p);
  // [tokens, pt*ph*pw*C] (features ordered (pt, ph, pw, c)) -> [C, F*pt, H*ph, W*pw] for a
  // token grid (F, H, W). fp32 tokens give an fp32 result (a head kept in fp32).
  Tensor unpatchify(const Tensor& tokens, int64_t grid_f, int64_t grid_h, int64_t grid_w,
                    int64_t channels, PatchSize p);

 protected:
  ~DitOps() = default;
  virtual Tensor modulate_impl(const Tensor& x, const Tensor& shift, const Tensor& scale) = 0;
  virtual Tensor layer_norm_modulate_impl(const Tensor& x, const Tensor& shift, const Tensor& scale,
                                          float eps, bool f32_out) = 0;
  virtual Tensor patchify_impl(const Tensor& x, PatchSize p) = 0;
  virtual Tensor unpatchify_impl(const Tensor& tokens, int64_t grid_f, int64_t grid_h, int64_t grid_w,
                                 int64_t channels, PatchSize p) = 0;

 private:
  friend class Backend;  // the only class that derives from this one
  DitOps() = default;
  Backend& backend();
};

}  // namespace raylight
