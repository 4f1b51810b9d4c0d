// Ops that move values without arithmetic, plus the rotary embedding (kernels in
// layout.cu, rope_halves.cu and sequence_ops.cu): copies, row stacking, the Ulysses head packing, and the
// latent <-> token permutations, which are exact on bf16.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/ops.h"

namespace raylight::cuda::op {

Tensor copy(Context& ctx, const Tensor& x) {
  Context::Scope s(ctx, kOther);
  return ctx.copy(x);
}

Tensor concat_rows(Context& ctx, const Tensor& a, const Tensor& b) {
  Context::Scope sc(ctx, kOther);
  Tensor y = ctx.alloc({a.dim(0) + b.dim(0), a.dim(1)}, DType::BF16);
  RL_CUDA(cudaMemcpyAsync(y.raw(), a.raw(), a.nbytes(), cudaMemcpyDeviceToDevice, ctx.stream));
  RL_CUDA(cudaMemcpyAsync(static_cast<char*>(y.raw()) + a.nbytes(), b.raw(), b.nbytes(), cudaMemcpyDeviceToDevice,
                          ctx.stream));
  return y;
}

// Each side's rows land in the output's rows as one strided 2-D copy.
Tensor concat_columns(Context& ctx, const Tensor& a, const Tensor& b) {
  const int64_t rows = a.dim(0), na = a.dim(1), nb = b.dim(1), row_bytes = (na + nb) * 2;
  Context::Scope sc(ctx, kOther);
  Tensor y = ctx.alloc({rows, na + nb}, DType::BF16);
  if (na)
    RL_CUDA(cudaMemcpy2DAsync(y.raw(), row_bytes, a.raw(), na * 2, na * 2, rows, cudaMemcpyDeviceToDevice,
                              ctx.stream));
  if (nb)
    RL_CUDA(cudaMemcpy2DAsync(static_cast<char*>(y.raw()) + na * 2, row_bytes, b.raw(), nb * 2, nb * 2, rows,
                              cudaMemcpyDeviceToDevice, ctx.stream));
  return y;
}

// A run of tokens is the same rotation on the tensor from its first token on.
void apply_rope(Context& ctx, Tensor& x, const Tensor& table, RopePairs pairs, int64_t first_token) {
  const float* t = ctx.device_table(table);
  const int64_t H = x.dim(1), D = x.dim(2);
  bf16* first = bp(x) + first_token * H * D;
  Context::Scope s(ctx, kOther);
  if (pairs == RopePairs::Adjacent) rope(first, t, table.dim(0), H, D, ctx.stream);
  else rope_halves(first, t, table.dim(0), H, D, ctx.stream);
}

Tensor swap_leading(Context& ctx, const Tensor& x) {
  const int64_t a = x.dim(0), b = x.dim(1), c = a * b == 0 ? 0 : x.numel() / (a * b);
  Shape shape = x.shape();
  std::swap(shape[0], shape[1]);
  Context::Scope s(ctx, kOther);
  Tensor y = ctx.alloc(shape, DType::BF16);
  cuda::swap_leading(bp(x), bp(y), a, b, c, ctx.stream);
  return y;
}

Tensor patchify(Context& ctx, const Tensor& x, PatchSize p) {
  const int64_t C = x.dim(0), F = x.dim(1), H = x.dim(2), W = x.dim(3);
  Context::Scope s(ctx, kOther);
  Tensor y = ctx.alloc({(F / p.t) * (H / p.h) * (W / p.w), C * p.volume()}, DType::BF16);
  cuda::patchify(bp(x), bp(y), C, F, H, W, p.t, p.h, p.w, ctx.stream);
  return y;
}

Tensor unpatchify(Context& ctx, const Tensor& t, int64_t gf, int64_t gh, int64_t gw, int64_t C, PatchSize p) {
  Context::Scope s(ctx, kOther);
  Tensor y = ctx.alloc({C, gf * p.t, gh * p.h, gw * p.w}, t.dtype());
  cuda::unpatchify(t.raw(), y.raw(), t.dtype() == DType::F32, gf, gh, gw, C, p.t, p.h, p.w, ctx.stream);
  return y;
}

}  // namespace raylight::cuda::op
