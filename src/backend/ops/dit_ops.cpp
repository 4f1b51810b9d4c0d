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

Tensor DitOps::layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                                   bool f32_out) {
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
  if (x.numel() == 0) return f32_out ? be.empty_f32(x.shape()) : be.empty(x.shape());
  return layer_norm_modulate_impl(x, shift, scale, eps, f32_out);
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

}  // namespace raylight
