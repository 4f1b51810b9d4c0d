// Pointwise ops (kernels in elementwise.cu and activations.cu): activations, adds, gated
// residuals and the DiT's modulation, bf16 in and out with fp32 arithmetic.
#include <algorithm>

#include "backend/cuda/kernels.h"
#include "backend/cuda/ops.h"

namespace raylight::cuda::op {
namespace {

Tensor unary_op(Context& ctx, const Tensor& x, Unary kind) {
  Context::Scope s(ctx, kOther);
  Tensor y = ctx.alloc(x.shape(), DType::BF16);
  unary(kind, bp(x), bp(y), x.numel(), ctx.stream);
  return y;
}

const bf16* maybe(const Tensor& v) { return v.defined() ? bp(v) : nullptr; }

}  // namespace

Tensor gelu_tanh(Context& ctx, const Tensor& x) { return unary_op(ctx, x, Unary::GeluTanh); }
Tensor gelu_erf(Context& ctx, const Tensor& x) { return unary_op(ctx, x, Unary::GeluErf); }
Tensor silu(Context& ctx, const Tensor& x) { return unary_op(ctx, x, Unary::Silu); }

Tensor quick_gelu(Context& ctx, const Tensor& x) {
  Context::Scope s(ctx, kOther);
  Tensor y = ctx.alloc(x.shape(), DType::BF16);
  cuda::quick_gelu(bp(x), bp(y), x.numel(), ctx.stream);
  return y;
}

Tensor swiglu(Context& ctx, const Tensor& gate, const Tensor& up) {
  Context::Scope s(ctx, kOther);
  Tensor y = ctx.alloc(gate.shape(), DType::BF16);
  cuda::swiglu(bp(gate), bp(up), bp(y), gate.numel(), ctx.stream);
  return y;
}

Tensor add(Context& ctx, const Tensor& a, const Tensor& b) {
  Context::Scope s(ctx, kOther);
  Tensor y = ctx.alloc(a.shape(), DType::BF16);
  cuda::add(bp(a), bp(b), bp(y), a.numel(), ctx.stream);
  return y;
}

void add_gated(Context& ctx, Tensor& x, const Tensor& y, const Tensor& gate) {
  const int64_t D = x.dim(-1);
  Context::Scope s(ctx, kOther);
  cuda::add_gated(bp(x), bp(y), maybe(gate), x.numel() / std::max<int64_t>(D, 1), D, ctx.stream);
}

Tensor modulate(Context& ctx, const Tensor& x, const Tensor& shift, const Tensor& scale) {
  const int64_t D = x.dim(-1);
  Context::Scope s(ctx, kOther);
  Tensor y = ctx.alloc(x.shape(), DType::BF16);
  cuda::modulate(bp(x), bp(shift), bp(scale), bp(y), x.numel() / std::max<int64_t>(D, 1), D, ctx.stream);
  return y;
}

}  // namespace raylight::cuda::op
