// Row norms (kernel in norm.cu): LayerNorm and RMSNorm with the optional affine weight and
// bias, and LayerNorm fused with the DiT's modulation, one pass over each row; q/k RMSNorm
// with RoPE (qk_norm_rope.cu).
#include <algorithm>

#include "backend/cuda/kernels.h"
#include "backend/cuda/ops.h"

namespace raylight::cuda::op {
namespace {

const bf16* maybe(const Tensor& v) { return v.defined() ? bp(v) : nullptr; }
const void* maybe_raw(const Tensor& v) { return v.defined() ? v.raw() : nullptr; }

// The fp32 scalar a norm's kernel writes its output's absmax into (null when not asked).
float* absmax_out(Context& ctx, Tensor* absmax) {
  if (!absmax) return nullptr;
  *absmax = ctx.alloc({1}, DType::F32);
  return absmax->data<float>();
}

// x and the modulation may be fp32 (a residual stream kept at full precision); the output
// is always the bf16 operand of the next product. shift and scale share a dtype (checked
// by the public op).
Tensor norm(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& shift, const Tensor& scale,
            float eps, bool rms, const char* name, bool f32_out = false, Tensor* absmax = nullptr) {
  const int64_t D = x.dim(-1);
  Context::Scope s(ctx, kOther, 0, name);
  Tensor y = ctx.alloc(x.shape(), f32_out ? DType::F32 : DType::BF16);
  const bool mod_f32 = (shift.defined() && shift.dtype() == DType::F32) ||
                       (scale.defined() && scale.dtype() == DType::F32);
  row_norm(x.raw(), x.dtype() == DType::F32, maybe(w), maybe(b), maybe_raw(shift), maybe_raw(scale), mod_f32, y.raw(), f32_out,
           x.numel() / std::max<int64_t>(D, 1), D, eps, rms, ctx.stream, {}, absmax_out(ctx, absmax));
  return y;
}

}  // namespace

Tensor layer_norm(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b, float eps) {
  return norm(ctx, x, w, b, {}, {}, eps, false, "layer_norm");
}

Tensor rms_norm(Context& ctx, const Tensor& x, const Tensor& w, float eps) {
  return norm(ctx, x, w, {}, {}, {}, eps, true, "rms_norm");
}

Tensor layer_norm_modulate(Context& ctx, const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                           bool f32_out, Tensor* absmax) {
  return norm(ctx, x, {}, {}, shift, scale, eps, false, "layer_norm_modulate", f32_out, absmax);
}

void qkv_norm_rope(Context& ctx, const Tensor& qkv, const Tensor& q_w, const Tensor& k_w, QkNormSpan span, float eps,
                   const Tensor& table, Tensor& q, Tensor& k, Tensor& v, int64_t row0) {
  const int64_t H = q.dim(1), D = q.dim(2), HD = H * D;
  const float* t = table.defined() ? ctx.device_table(table) + row0 * D : nullptr;
  Context::Scope s(ctx, kOther);
  const bf16* src = bp(qkv);
  qk_norm_rope({src, src + HD, src + 2 * HD, 3 * HD}, bp(q_w), bp(k_w), span == QkNormSpan::Head, eps, t,
               bp(q) + row0 * HD, bp(k) + row0 * HD, bp(v) + row0 * HD, qkv.dim(0), H, D, ctx.stream);
}

Tensor norm_rope(Context& ctx, const Tensor& x, const Tensor& w, QkNormSpan span, float eps, const Tensor& table,
                 int64_t heads) {
  const int64_t rows = x.dim(0), D = x.dim(1) / heads;
  const float* t = table.defined() ? ctx.device_table(table) : nullptr;
  Context::Scope s(ctx, kOther);
  Tensor y = ctx.alloc({rows, heads, D}, DType::BF16);
  qk_norm_rope({bp(x), nullptr, nullptr, x.dim(1)}, bp(w), nullptr, span == QkNormSpan::Head, eps, t, bp(y), nullptr,
               nullptr, rows, heads, D, ctx.stream);
  return y;
}

// One pass where every gate and the modulation share a dtype (the kernel's one modulation
// type) and the updates are bf16; otherwise the ops it fuses, the updates into x (or into a
// copy of x where the sum is not stored) and then the norm.
Tensor gated_sum_layer_norm(Context& ctx, const Tensor& x, const std::vector<GatedUpdate>& updates, Tensor* sum,
                            const Tensor& w, const Tensor& b, const Tensor& shift, const Tensor& scale, float eps,
                            Tensor* absmax) {
  if (updates.empty() || updates.size() > 2) fail("gated_sum_layer_norm: one or two updates, got ", updates.size());
  const GatedUpdate* gated = nullptr;  // an update with a gate (its dtype decides, as the shift's)
  for (const GatedUpdate& u : updates)
    if (u.gate.defined()) gated = &u;
  const bool mod_f32 = shift.defined() ? shift.dtype() == DType::F32 : gated && gated->gate.dtype() == DType::F32;
  bool one_pass = true;
  for (const GatedUpdate& u : updates)
    one_pass = one_pass && u.y.dtype() == DType::BF16 && (!u.gate.defined() || (u.gate.dtype() == DType::F32) == mod_f32);
  if (!one_pass) {
    Tensor s = sum ? *sum : ctx.copy(x);
    for (const GatedUpdate& u : updates) add_gated(ctx, s, u.y, u.gate);
    return norm(ctx, s, w, b, shift, scale, eps, false, "layer_norm", false, absmax);
  }
  const int64_t D = x.dim(-1);
  Context::Scope s(ctx, kOther, 0, sum ? "add_gated_layer_norm" : "gated_sum_layer_norm");
  Tensor out = ctx.alloc(x.shape(), DType::BF16);
  ResidualAdd add;
  add.y = bp(updates[0].y);
  add.gate = maybe_raw(updates[0].gate);
  if (updates.size() == 2) add.then = {bp(updates[1].y), maybe_raw(updates[1].gate)};
  add.store = sum != nullptr;
  row_norm(x.raw(), x.dtype() == DType::F32, maybe(w), maybe(b), maybe_raw(shift), maybe_raw(scale), mod_f32,
           out.raw(), false, x.numel() / std::max<int64_t>(D, 1), D, eps, false, ctx.stream, add,
           absmax_out(ctx, absmax));
  return out;
}

}  // namespace raylight::cuda::op
