// Row norms (kernel in norm.cu): LayerNorm and RMSNorm with the optional affine weight and
// bias, and LayerNorm fused with the DiT's modulation, one pass over each row.
#include <algorithm>

#include "backend/cuda/kernels.h"
#include "backend/cuda/ops.h"

namespace raylight::cuda::op {
namespace {

const bf16* maybe(const Tensor& v) { return v.defined() ? bp(v) : nullptr; }

Tensor norm(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& shift, const Tensor& scale,
            float eps, bool rms) {
  const int64_t D = x.dim(-1);
  Context::Scope s(ctx, kOther);
  Tensor y = ctx.alloc(x.shape(), DType::BF16);
  row_norm(bp(x), maybe(w), maybe(b), maybe(shift), maybe(scale), bp(y), x.numel() / std::max<int64_t>(D, 1), D, eps,
           rms, ctx.stream);
  return y;
}

}  // namespace

Tensor layer_norm(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b, float eps) {
  return norm(ctx, x, w, b, {}, {}, eps, false);
}

Tensor rms_norm(Context& ctx, const Tensor& x, const Tensor& w, float eps) {
  return norm(ctx, x, w, {}, {}, {}, eps, true);
}

Tensor layer_norm_modulate(Context& ctx, const Tensor& x, const Tensor& shift, const Tensor& scale, float eps) {
  return norm(ctx, x, {}, {}, shift, scale, eps, false);
}

}  // namespace raylight::cuda::op
