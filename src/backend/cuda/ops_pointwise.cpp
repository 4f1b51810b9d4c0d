// Pointwise ops (kernels in elementwise.cu and activations.cu): activations, adds, gated
// residuals and the DiT's modulation, bf16 in and out with fp32 arithmetic; silu, adds and
// gated residuals also take fp32 operands (precise.cu) for a residual stream kept in fp32.
#include <algorithm>

#include "backend/cuda/kernels.h"
#include "backend/cuda/ops.h"

namespace raylight::cuda::op {
namespace {

Tensor unary_op(Context& ctx, const Tensor& x, Unary kind) {
  Context::Scope s(ctx, kOther, 0, kind == Unary::GeluTanh ? "gelu_tanh" : kind == Unary::GeluErf ? "gelu_erf" : "silu");
  Tensor y = ctx.alloc(x.shape(), DType::BF16);
  unary(kind, bp(x), bp(y), x.numel(), ctx.stream);
  return y;
}

const bf16* maybe(const Tensor& v) { return v.defined() ? bp(v) : nullptr; }
AnyRow any_row(const Tensor& t) { return t.defined() ? AnyRow{t.raw(), t.dtype() == DType::F32} : AnyRow{}; }

}  // namespace

Tensor gelu_tanh(Context& ctx, const Tensor& x) { return unary_op(ctx, x, Unary::GeluTanh); }
Tensor gelu_erf(Context& ctx, const Tensor& x) { return unary_op(ctx, x, Unary::GeluErf); }
Tensor silu(Context& ctx, const Tensor& x) {
  if (x.dtype() != DType::F32) return unary_op(ctx, x, Unary::Silu);
  Context::Scope s(ctx, kOther);
  Tensor y = ctx.alloc(x.shape(), DType::F32);
  silu_f32(x.data<float>(), y.data<float>(), x.numel(), ctx.stream);
  return y;
}

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

// Adds are fp32 when either operand is (a modulation table plus the fp32 time embedding).
Tensor add(Context& ctx, const Tensor& a, const Tensor& b) {
  Context::Scope s(ctx, kOther);
  const bool f32 = a.dtype() == DType::F32 || b.dtype() == DType::F32;
  Tensor y = ctx.alloc(a.shape(), f32 ? DType::F32 : DType::BF16);
  if (f32) add_mixed(any_row(a), any_row(b), y.raw(), true, a.numel(), ctx.stream);
  else cuda::add(bp(a), bp(b), bp(y), a.numel(), ctx.stream);
  return y;
}

void add_gated(Context& ctx, Tensor& x, const Tensor& y, const Tensor& gate) {
  const int64_t D = x.dim(-1);
  Context::Scope s(ctx, kOther);
  const int64_t rows = x.numel() / std::max<int64_t>(D, 1);
  const bool mixed = x.dtype() == DType::F32 || y.dtype() == DType::F32 ||
                     (gate.defined() && gate.dtype() == DType::F32);
  if (mixed) add_gated_mixed(x.raw(), x.dtype() == DType::F32, any_row(y), any_row(gate), rows, D, ctx.stream);
  else cuda::add_gated(bp(x), bp(y), maybe(gate), rows, D, ctx.stream);
}

Tensor modulate(Context& ctx, const Tensor& x, const Tensor& shift, const Tensor& scale) {
  const int64_t D = x.dim(-1);
  Context::Scope s(ctx, kOther);
  Tensor y = ctx.alloc(x.shape(), DType::BF16);
  cuda::modulate(bp(x), bp(shift), bp(scale), bp(y), x.numel() / std::max<int64_t>(D, 1), D, ctx.stream);
  return y;
}

}  // namespace raylight::cuda::op
