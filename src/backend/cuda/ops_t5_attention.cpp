// T5's offset-biased attention (kernel in biased_attention.cu): the bias row goes up once
// per call, the rest stays on the device. More keys than the kernel's shared-memory score
// row holds run on the CPU reference.
#include "backend/cuda/biased_attention.h"
#include "backend/cuda/ops.h"

namespace raylight::cuda::op {

Tensor attention_offset_bias(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias,
                             float scale) {
  const int64_t Lq = q.dim(0), Lk = k.dim(0), H = q.dim(1), D = q.dim(2);
  if (Lk > kOffsetBiasMaxKeys) {
    Backend& cpu = ctx.host_reference();
    return ctx.upload(cpu.attention_offset_bias(cpu.upload(ctx.download(q)), cpu.upload(ctx.download(k)),
                                                cpu.upload(ctx.download(v)), bias, scale));
  }
  Context::Scope sc(ctx, kAttention, 4.0 * Lq * Lk * H * D);
  Tensor b = ctx.alloc(bias.shape(), DType::F32);
  ctx.stage(bias.raw(), b.raw(), bias.nbytes());
  Tensor o = ctx.alloc({Lq, H, D}, DType::BF16);
  offset_bias_attention(bp(q), bp(k), bp(v), b.data<float>(), bp(o), Lq, Lk, H, D, scale, ctx.stream);
  return o;
}

}  // namespace raylight::cuda::op
