// Row norms (kernel in norm.cu): LayerNorm and RMSNorm with the optional affine weight and
// bias, and LayerNorm fused with the DiT's modulation, one pass over each row.
#include <algorithm>

#include "backend/cuda/kernels.h"
#include "backend/cuda/ops.h"

namespace raylight::cuda::op {
namespace {

const bf16* maybe(const Tensor& v) { return v.defined() ? bp(v) : nullptr; }
const void* maybe_raw(const Tensor& v) { return v.defined() ? v.raw() : nullptr; }

// x and the modulation may be fp32 (a residual stream kept at full precision); the output
// is always the bf16 operand of the next product. shift and scale share a dtype (checked
// by the public op).
Tensor norm(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& shift, const Tensor& scale,
            float eps, bool rms, bool f32_out = false) {
  const int64_t D = x.dim(-1);
  Context::Scope s(ctx, kOther);
  Tensor y = ctx.alloc(x.shape(), f32_out ? DType::F32 : DType::BF16);
  const bool mod_f32 = (shift.defined() && shift.dtype() == DType::F32) ||
                       (scale.defined() && scale.dtype() == DType::F32);
  row_norm(x.raw(), x.dtype() == DType::F32, maybe(w), maybe(b), maybe_raw(shift), maybe_raw(scale), mod_f32, y.raw(), f32_out,
           x.numel() / std::max<int64_t>(D, 1), D, eps, rms, ctx.stream);
  return y;
}

}  // namespace

Tensor layer_norm(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b, float eps) {
  return norm(ctx, x, w, b, {}, {}, eps, false);
}

Tensor rms_norm(Context& ctx, const Tensor& x, const Tensor& w, float eps) {
  return norm(ctx, x, w, {}, {}, {}, eps, true);
}

Tensor layer_norm_modulate(Context& ctx, const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                           bool f32_out) {
  return norm(ctx, x, {}, {}, shift, scale, eps, false, f32_out);
}

}  // namespace raylight::cuda::op
