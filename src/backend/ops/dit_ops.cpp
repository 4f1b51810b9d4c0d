// The checked public ops of dit_ops.h.
#include "backend/ops/dit_ops.h"

#include "backend/backend.h"
#include "backend/ops/op_checks.h"
#include "core/error.h"

namespace raylight {

Backend& DitOps::backend() { return static_cast<Backend&>(*this); }

Tensor DitOps::modulate(const Tensor& x, const Tensor& shift, const Tensor& scale) {
  Backend& be = backend();
  checks::activation(be, x, "modulate", "input");
  if (x.ndim() < 1 || x.dim(-1) < 1) fail("modulate: input ", shape_str(x.shape()), " has no features");
  checks::vector(be, shift, x.dim(-1), "modulate", "shift", true);
  checks::vector(be, scale, x.dim(-1), "modulate", "scale", true);
  if (x.numel() == 0) return be.empty(x.shape());
  return modulate_impl(x, shift, scale);
}

namespace {

// The absmax of a result with no rows.
void no_rows_absmax(Backend& be, Tensor* absmax) {
  if (absmax) *absmax = be.upload_f32(Tensor::zeros({1}));
}

}  // namespace

Tensor DitOps::layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                                   bool f32_out, Tensor* absmax) {
  Backend& be = backend();
  checks::precise_activation(be, x, "layer_norm_modulate", "input");
  if (x.ndim() < 1 || x.dim(-1) < 1) fail("layer_norm_modulate: input ", shape_str(x.shape()), " has no features");
  checks::precise_vector(be, shift, x.dim(-1), "layer_norm_modulate", "shift", true);
  checks::precise_vector(be, scale, x.dim(-1), "layer_norm_modulate", "scale", true);
  if (shift.dtype() != scale.dtype())
    fail("layer_norm_modulate: shift is ", dtype_name(shift.dtype()), " and scale ", dtype_name(scale.dtype()),
         "; they must match");
  if (f32_out && (x.dtype() != DType::F32 || shift.dtype() != DType::F32))
    fail("layer_norm_modulate: an fp32 result needs an fp32 input and modulation, got ", dtype_name(x.dtype()),
         " and ", dtype_name(shift.dtype()));
  if (x.numel() == 0) {
    no_rows_absmax(be, absmax);
    return f32_out ? be.empty_f32(x.shape()) : be.empty(x.shape());
  }
  return layer_norm_modulate_impl(x, shift, scale, eps, f32_out, absmax);
}

namespace {

// The operands every gated norm shares: x and the updates' shapes and dtypes, the affine and
// modulation vectors. True when x has no rows (the caller returns an empty result).
bool check_gated_norm(Backend& be, const Tensor& x, const std::vector<GatedUpdate>& updates, const Tensor& weight,
                      const Tensor& bias, const Tensor& shift, const Tensor& scale, const char* op) {
  checks::precise_activation(be, x, op, "input");
  if (x.ndim() < 1 || x.dim(-1) < 1) fail(op, ": input ", shape_str(x.shape()), " has no features");
  const int64_t D = x.dim(-1);
  for (const GatedUpdate& u : updates) {
    checks::activation(be, u.y, op, "addend");
    if (u.y.shape() != x.shape()) fail(op, ": shapes ", shape_str(x.shape()), " and ", shape_str(u.y.shape()), " differ");
    checks::precise_vector(be, u.gate, D, op, "gate");
  }
  checks::vector(be, weight, D, op, "weight");
  checks::vector(be, bias, D, op, "bias");
  checks::precise_vector(be, shift, D, op, "shift");
  checks::precise_vector(be, scale, D, op, "scale");
  if (shift.defined() != scale.defined()) fail(op, ": shift and scale come together");
  if (shift.defined() && shift.dtype() != scale.dtype())
    fail(op, ": shift is ", dtype_name(shift.dtype()), " and scale ", dtype_name(scale.dtype()), "; they must match");
  return x.numel() == 0;
}

}  // namespace

Tensor DitOps::add_gated_layer_norm(Tensor& x, const Tensor& y, const Tensor& gate, const Tensor& weight,
                                    const Tensor& bias, const Tensor& shift, const Tensor& scale, float eps,
                                    Tensor* absmax) {
  Backend& be = backend();
  const std::vector<GatedUpdate> updates{{y, gate}};
  if (check_gated_norm(be, x, updates, weight, bias, shift, scale, "add_gated_layer_norm")) {
    no_rows_absmax(be, absmax);
    return be.empty(x.shape());
  }
  return gated_sum_layer_norm_impl(x, updates, &x, weight, bias, shift, scale, eps, absmax);
}

Tensor DitOps::add_gated_layer_norm(Tensor& x, const GatedUpdate& first, const GatedUpdate& second,
                                    const Tensor& weight, const Tensor& bias, const Tensor& shift, const Tensor& scale,
                                    float eps, Tensor* absmax) {
  Backend& be = backend();
  const std::vector<GatedUpdate> updates{first, second};
  if (check_gated_norm(be, x, updates, weight, bias, shift, scale, "add_gated_layer_norm")) {
    no_rows_absmax(be, absmax);
    return be.empty(x.shape());
  }
  return gated_sum_layer_norm_impl(x, updates, &x, weight, bias, shift, scale, eps, absmax);
}

Tensor DitOps::gated_sum_layer_norm(const Tensor& x, const Tensor& y, const Tensor& gate, const Tensor& weight,
                                    const Tensor& bias, const Tensor& shift, const Tensor& scale, float eps,
                                    Tensor* absmax) {
  Backend& be = backend();
  const std::vector<GatedUpdate> updates{{y, gate}};
  if (check_gated_norm(be, x, updates, weight, bias, shift, scale, "gated_sum_layer_norm")) {
    no_rows_absmax(be, absmax);
    return be.empty(x.shape());
  }
  return gated_sum_layer_norm_impl(x, updates, nullptr, weight, bias, shift, scale, eps, absmax);
}

namespace {

void check_patch(PatchSize p, const char* op) {
  if (p.t < 1 || p.h < 1 || p.w < 1) fail(op, ": patch (", p.t, ", ", p.h, ", ", p.w, ") is not positive");
}

}  // namespace

Tensor DitOps::patchify(const Tensor& x, PatchSize p) {
  Backend& be = backend();
  check_patch(p, "patchify");
  checks::activation(be, x, 4, "[C, F, H, W]", "patchify", "latent");
  const int64_t C = x.dim(0), F = x.dim(1), H = x.dim(2), W = x.dim(3);
  if (F % p.t || H % p.h || W % p.w)
    fail("patchify: latent ", shape_str(x.shape()), " is not divisible by the patch (", p.t, ", ", p.h, ", ",
         p.w, ")");
  const Shape out{(F / p.t) * (H / p.h) * (W / p.w), C * p.volume()};
  if (x.numel() == 0) return be.empty(out);
  return patchify_impl(x, p);
}

Tensor DitOps::unpatchify(const Tensor& tokens, int64_t gf, int64_t gh, int64_t gw, int64_t C, PatchSize p) {
  Backend& be = backend();
  check_patch(p, "unpatchify");
  checks::precise_activation(be, tokens, "unpatchify", "tokens");
  if (tokens.ndim() != 2) fail("unpatchify: tokens have shape ", shape_str(tokens.shape()), ", expected [tokens, features]");
  if (gf < 0 || gh < 0 || gw < 0 || C < 0) fail("unpatchify: negative grid or channel count");
  const int64_t n = checks::mul(checks::mul(gf, gh, "unpatchify"), gw, "unpatchify");
  if (tokens.dim(0) != n || tokens.dim(1) != checks::mul(C, p.volume(), "unpatchify"))
    fail("unpatchify: tokens ", shape_str(tokens.shape()), " do not fit a grid ", gf, "x", gh, "x", gw, " with ",
         C * p.volume(), " features");
  if (tokens.numel() == 0) {
    const Shape out{C, gf * p.t, gh * p.h, gw * p.w};
    return tokens.dtype() == DType::F32 ? be.empty_f32(out) : be.empty(out);
  }
  return unpatchify_impl(tokens, gf, gh, gw, C, p);
}

namespace {

// A RoPE table for `rows` rows of head_dim D: undefined (no rotation), or host fp32 / fp32 or
// compute dtype on be's device, [rows, D/2, 2], contiguous.
void check_rope_table(const Backend& be, const Tensor& table, int64_t rows, int64_t D, const char* op) {
  if (!table.defined()) return;
  const bool host_f32 = table.device() == Device::CPU && table.dtype() == DType::F32;
  const bool ours = table.device() == be.device() && (table.dtype() == DType::F32 || table.dtype() == be.compute_dtype());
  if (!host_f32 && !ours)
    fail(op, ": the RoPE table is ", dtype_name(table.dtype()), " in ", table.device() == Device::CPU ? "host" : "GPU",
         " memory; expected host fp32 or a tensor of backend ", be.name());
  if (!table.is_contiguous()) fail(op, ": the RoPE table is not contiguous");
  if (table.ndim() != 3 || table.dim(0) != rows || table.dim(1) * 2 != D || table.dim(2) != 2)
    fail(op, ": the RoPE table ", shape_str(table.shape()), " does not fit ", rows, " rows of head_dim ", D);
}

// q/k norm weight of a span: head_dim elements per head, or the whole row.
int64_t norm_width(QkNormSpan span, int64_t H, int64_t D) { return span == QkNormSpan::Head ? D : H * D; }

}  // namespace

void DitOps::qkv_norm_rope(const Tensor& qkv, const Tensor& q_weight, const Tensor& k_weight, QkNormSpan span,
                           float eps, const Tensor& table, Tensor& q, Tensor& k, Tensor& v, int64_t row0) {
  Backend& be = backend();
  const char* op = "qkv_norm_rope";
  checks::activation(be, qkv, 2, "[rows, 3 * heads * head_dim]", op, "qkv");
  checks::activation(be, q, 3, "[L, heads, head_dim]", op, "q");
  checks::activation(be, k, 3, "[L, heads, head_dim]", op, "k");
  checks::activation(be, v, 3, "[L, heads, head_dim]", op, "v");
  if (k.shape() != q.shape() || v.shape() != q.shape())
    fail(op, ": q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), " and v ", shape_str(v.shape()),
         " differ in shape");
  if (q.numel() > 0 && (q.raw() == k.raw() || q.raw() == v.raw() || k.raw() == v.raw()))
    fail(op, ": q, k and v share their storage");
  const int64_t L = q.dim(0), H = q.dim(1), D = q.dim(2), rows = qkv.dim(0);
  if (D % 2 != 0) fail(op, ": head_dim ", D, " is odd");
  if (qkv.dim(1) != checks::mul(3, checks::mul(H, D, op), op))
    fail(op, ": qkv ", shape_str(qkv.shape()), " does not hold q, k and v of ", H, " heads x ", D);
  if (row0 < 0 || row0 > L || rows > L - row0)
    fail(op, ": ", rows, " rows from row ", row0, " do not fit q ", shape_str(q.shape()));
  checks::vector(be, q_weight, norm_width(span, H, D), op, "q weight", true);
  checks::vector(be, k_weight, norm_width(span, H, D), op, "k weight", true);
  check_rope_table(be, table, L, D, op);
  if (rows == 0 || H * D == 0) return;
  qkv_norm_rope_impl(qkv, q_weight, k_weight, span, eps, table, q, k, v, row0);
}

Tensor DitOps::norm_rope(const Tensor& x, const Tensor& weight, QkNormSpan span, float eps, const Tensor& table,
                         int64_t heads) {
  Backend& be = backend();
  const char* op = "norm_rope";
  checks::activation(be, x, 2, "[rows, heads * head_dim]", op, "input");
  if (heads < 1 || x.dim(1) % heads != 0)
    fail(op, ": ", heads, " heads do not divide the ", x.dim(1), " features of the input");
  const int64_t rows = x.dim(0), D = x.dim(1) / heads;
  if (D % 2 != 0) fail(op, ": head_dim ", D, " is odd");
  checks::vector(be, weight, norm_width(span, heads, D), op, "weight", true);
  check_rope_table(be, table, rows, D, op);
  if (x.numel() == 0) return be.empty({rows, heads, D});
  return norm_rope_impl(x, weight, span, eps, table, heads);
}

}  // namespace raylight
