// Ops of the diffusion transformers (Wan, and the DiTs that share its adaLN design):
// modulation by the timestep embedding and the latent <-> token layout. A mixin of Backend
// (backend.h): each public op checks its operands once (dit_ops.cpp), then calls the
// backend's protected *_impl, which only computes.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace raylight {

class Backend;

// How q and k are RMS-normed before attention: per head (Flux's QKNorm: a weight of
// head_dim) or over the whole row of heads (Wan's norm_q / norm_k: a weight of
// heads * head_dim).
enum class QkNormSpan { Head, Row };

struct PatchSize {
  int t = 1, h = 2, w = 2;
  int volume() const { return t * h * w; }
};

// One gated residual update of a DiT block: y * gate (gate [D]), or y itself where gate is
// undefined.
struct GatedUpdate {
  Tensor y;
  Tensor gate;
};

class DitOps {
 public:
  // x * (1 + scale) + shift with shift/scale [D] broadcast over the rows of x [.., D].
  Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale);
  // modulate(layer_norm(x, {}, {}, eps), shift, scale): the DiT's adaLN, one pass. x and
  // shift/scale may be fp32 (backend.h, "precise operands"); the result is the compute
  // dtype, or fp32 when f32_out (x, shift and scale fp32 then: a head kept in fp32).
  // absmax (here and in add_gated_layer_norm): when given, receives max |result| over the
  // values as stored (after rounding to the result's dtype; non-finite values skipped as
  // fmaxf skips NaN), fp32 [1] on this device: the next fp8 product's x_absmax
  // (Backend::linear), so that it need not measure the result again. 0 for no rows.
  Tensor layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                             bool f32_out = false, Tensor* absmax = nullptr);
  // [C, F, H, W] -> [tokens, C*pt*ph*pw], features ordered (c, pt, ph, pw) like a Conv3d
  // weight, tokens ordered (f, h, w).
  Tensor patchify(const Tensor& x, PatchSize p);
  // [tokens, pt*ph*pw*C] (features ordered (pt, ph, pw, c)) -> [C, F*pt, H*ph, W*pw] for a
  // token grid (F, H, W). fp32 tokens give an fp32 result (a head kept in fp32).
  Tensor unpatchify(const Tensor& tokens, int64_t grid_f, int64_t grid_h, int64_t grid_w,
                    int64_t channels, PatchSize p);

  // x += y * gate (gate [D], or undefined: a plain residual add), then the LayerNorm of the
  // updated rows with the optional affine weight / bias and the optional modulation
  // (shift and scale, both or neither) -> compute dtype: a DiT block's gated residual and
  // its next norm in one pass over x. x, gate, shift and scale may be fp32 (backend.h,
  // "precise operands"); equals add_gated then layer_norm / layer_norm_modulate.
  Tensor add_gated_layer_norm(Tensor& x, const Tensor& y, const Tensor& gate, const Tensor& weight, const Tensor& bias,
                              const Tensor& shift, const Tensor& scale, float eps, Tensor* absmax = nullptr);
  // The same with two updates applied in turn: x += first, then x += second (each sum
  // rounded to x's dtype, as two add_gated calls round), then the norm. The update that an
  // earlier gated_sum_layer_norm left out of x arrives here as `first`.
  Tensor add_gated_layer_norm(Tensor& x, const GatedUpdate& first, const GatedUpdate& second, const Tensor& weight,
                              const Tensor& bias, const Tensor& shift, const Tensor& scale, float eps,
                              Tensor* absmax = nullptr);
  // What add_gated_layer_norm(x, y, gate, ...) returns, with x left as it is: the norm of
  // x + y * gate for a block whose next residual update goes through the two-update
  // add_gated_layer_norm with this one first. x is then written once for both updates
  // instead of once each: a DiT keeps x in fp32, so this saves a write of the whole residual
  // stream (and reads y once more, at half its size in the compute dtype).
  Tensor gated_sum_layer_norm(const Tensor& x, const Tensor& y, const Tensor& gate, const Tensor& weight,
                              const Tensor& bias, const Tensor& shift, const Tensor& scale, float eps,
                              Tensor* absmax = nullptr);
  // The attention operands of one fused product in one pass: qkv [rows, 3*H*D] holds q | k | v
  // per row (Flux's qkv and linear1 products). q and k are RMS-normed (span, their weights,
  // eps), turned by RoPE (adjacent pairs, table [L, D/2, 2] fp32 whose row i turns output row
  // i; undefined: no rotation) and written with v into rows [row0, row0 + rows) of q, k, v
  // [L, H, D], so the segments of a joint sequence land in one buffer unconcatenated. Equals
  // rms_norm, apply_rope and the split with no rounding between them.
  void qkv_norm_rope(const Tensor& qkv, const Tensor& q_weight, const Tensor& k_weight, QkNormSpan span, float eps,
                     const Tensor& table, Tensor& q, Tensor& k, Tensor& v, int64_t row0);
  // One of them from its own product: x [rows, H*D] RMS-normed and turned by table
  // [rows, D/2, 2] (undefined: no rotation) -> [rows, H, D] (Wan's separate q and k).
  Tensor norm_rope(const Tensor& x, const Tensor& weight, QkNormSpan span, float eps, const Tensor& table,
                   int64_t heads);

 protected:
  ~DitOps() = default;
  virtual Tensor modulate_impl(const Tensor& x, const Tensor& shift, const Tensor& scale) = 0;
  // absmax (here and in add_gated_layer_norm_impl): null, or set to the result's absmax.
  virtual Tensor layer_norm_modulate_impl(const Tensor& x, const Tensor& shift, const Tensor& scale,
                                          float eps, bool f32_out, Tensor* absmax) = 0;
  virtual Tensor patchify_impl(const Tensor& x, PatchSize p) = 0;
  virtual Tensor unpatchify_impl(const Tensor& tokens, int64_t grid_f, int64_t grid_h, int64_t grid_w,
                                 int64_t channels, PatchSize p) = 0;
  // x plus the updates (one or two, in turn, each sum rounded to x's dtype), normed; the
  // sum is stored into *sum when given (x itself: add_gated_layer_norm), else x is only read
  // (gated_sum_layer_norm).
  virtual Tensor gated_sum_layer_norm_impl(const Tensor& x, const std::vector<GatedUpdate>& updates, Tensor* sum,
                                           const Tensor& weight, const Tensor& bias, const Tensor& shift,
                                           const Tensor& scale, float eps, Tensor* absmax) = 0;
  // Operands checked; rows >= 1; table undefined or host / device fp32 with L rows.
  virtual void qkv_norm_rope_impl(const Tensor& qkv, const Tensor& q_weight, const Tensor& k_weight, QkNormSpan span,
                                  float eps, const Tensor& table, Tensor& q, Tensor& k, Tensor& v, int64_t row0) = 0;
  virtual Tensor norm_rope_impl(const Tensor& x, const Tensor& weight, QkNormSpan span, float eps,
                                const Tensor& table, int64_t heads) = 0;

 private:
  friend class Backend;  // the only class that derives from this one
  DitOps() = default;
  Backend& backend();
};

}  // namespace raylight
