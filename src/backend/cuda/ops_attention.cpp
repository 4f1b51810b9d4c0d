// Attention on the CUDA backend. cuDNN's fused flash attention when it is chosen and has a
// plan, else our own mma.sync kernel (head_dim 64 / 128); one head of another size (the VAE's
// middle attention, D = C) as two cuBLASLt products around a row softmax; anything else on
// the CPU reference (correct, slow). Causal masks (the text encoders': short sequences) run
// on the masked-row kernel; grouped-query heads without one are repeated to full heads
// first. Also the Ring merge by log-sum-exp and the switch between the kernels.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cudnn_attention.h"
#include "backend/cuda/fp8_flash.h"
#include "backend/cuda/fp8_lse.h"
#include "backend/cuda/fp8_quantise.h"
#include "backend/cuda/fp8_rows_kernels.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/masked_attention.h"
#include "backend/cuda/ops.h"
#include "backend/cuda/video_kernels.h"
#include "backend/fp8_kv_chunks.h"
#include "backend/fp8_rotation.h"

namespace raylight::cuda::op {
namespace {

// Head sizes the kernels do not cover run on the CPU reference.
Tensor attention_on_cpu(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, int64_t k_valid,
                        Tensor* lse) {
  Backend& cpu = ctx.host_reference();
  Tensor host_lse;
  Tensor o = cpu.attention(cpu.upload(ctx.download(q)), cpu.upload(ctx.download(k)), cpu.upload(ctx.download(v)),
                           k_valid, lse ? &host_lse : nullptr);
  if (lse) {
    *lse = ctx.alloc(host_lse.shape(), DType::F32);
    ctx.stage(host_lse.raw(), lse->raw(), host_lse.nbytes());
  }
  return ctx.upload(o);
}

// One head of a size neither fused kernel covers (the VAE's middle attention, D = C):
// S = q k^T / sqrt(D) (cuBLASLt, bf16 scores), row softmax in place, o = P v.
Tensor attention_by_gemm(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, int64_t valid, Tensor* lse) {
  const int64_t Lq = q.dim(0), Lk = k.dim(0), D = q.dim(2);
  Context::Scope sc(ctx, kAttention, 4.0 * Lq * valid * D);
  Tensor s = ctx.alloc({Lq, Lk}, DType::BF16);
  if (!ctx.gemm->run(q.raw(), DType::BF16, nullptr, k.raw(), DType::BF16, 1.0f / std::sqrt(float(D)), nullptr,
                     s.raw(), Lq, Lk, D, Epilogue::None))
    return attention_on_cpu(ctx, q, k, v, valid, lse);
  float* l = nullptr;
  if (lse) {
    *lse = ctx.alloc({1, Lq}, DType::F32);
    l = lse->data<float>();
  }
  softmax_rows(bp(s), l, Lq, Lk, valid, ctx.stream);
  Tensor vt = ctx.alloc({D, Lk}, DType::BF16);
  cuda::swap_leading(bp(v), bp(vt), Lk, D, 1, ctx.stream);
  Tensor o = ctx.alloc(q.shape(), DType::BF16);
  if (!ctx.gemm->run(s.raw(), DType::BF16, nullptr, vt.raw(), DType::BF16, 1.0f, nullptr, o.raw(), Lq, D, Lk,
                     Epilogue::None))
    fail("attention: cuBLASLt has no algorithm for ", Lq, "x", D, "x", Lk);
  return o;
}

// Causal masks (and grouped heads under them): the masked-row kernel.
Tensor masked_attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, AttentionMask mask,
                        Tensor* lse) {
  const int64_t Lq = q.dim(0), Lk = k.dim(0), H = q.dim(1), Hkv = k.dim(1), D = q.dim(2);
  if (Lk > kMaskedAttentionMaxKeys)
    fail("causal attention on CUDA takes at most ", kMaskedAttentionMaxKeys, " keys, got ", Lk);
  Context::Scope s(ctx, kAttention, 2.0 * Lq * mask.k_valid * H * D);
  Tensor o = ctx.alloc(q.shape(), DType::BF16);
  float* l = nullptr;
  if (lse) {
    *lse = ctx.alloc({H, Lq}, DType::F32);
    l = lse->data<float>();
  }
  cuda::masked_attention(bp(q), bp(k), bp(v), bp(o), l, Lq, Lk, H, Hkv, D, mask.k_valid, mask.causal, ctx.stream);
  return o;
}

// --attention fp8 runs fp8 only where the keys are many: with few (cross-attention's 512 text
// tokens) the quantisation of q costs about what the product saves, and bf16 is exact-er.
constexpr int64_t kFp8MinKeys = 2048;

// Our own fp8 kernel (fp8_flash.h) serves the call: chosen, Hopper, head size 128, and one
// call over all keys (no key chunks asked for).
bool own_fp8_serves(const Context& ctx, int64_t D, int64_t Lk, int64_t valid, int64_t kv_chunk) {
  return ctx.opt.fp8_own_kernel && fp8_flash_supports(D) && fp8_kv_chunks(Lk, valid, kv_chunk).empty();
}

// fp8 attention through cuDNN: q, k, v quantised per tensor on the device (q and k rotated per
// head, k and v smoothed over the valid keys; fp8_quantise.h), then the fp8 graph, once or per
// key chunk as kv_chunk says (backend/fp8_kv_chunks.h). False when cuDNN has no fp8 plan for
// the shape. codes (or null): filled instead of o where cuDNN wrote e4m3 (one graph; Hopper):
// the codes in their own allocation, v's descale (a view that keeps `scales` alive) and v's
// column mean as the offset. lse (or null): of the true scores, as bf16 attention's: the
// kernels' lse (ours, cuDNN's one call's or its chunk merge's) is of the smoothed k, and
// fp8_lse.h adds q . mean_k / sqrt(D) back once after the kernel ran.
bool fp8_attention(CudnnAttention& cudnn, Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                   int64_t valid, bf16* o, float* lse, int64_t kv_chunk, Fp8Rows* codes = nullptr) {
  const int64_t Lq = q.dim(0), Lk = k.dim(0), H = q.dim(1), D = q.dim(2), C = H * D;
  if (D % 16 != 0) return false;
  // Our kernel takes V quantised straight into its V^T layout, with no codes in between.
  const bool own = own_fp8_serves(ctx, D, Lk, valid, kv_chunk);
  Tensor q8 = ctx.alloc({Lq * C}, DType::U8), k8 = ctx.alloc({Lk * C}, DType::U8);
  Tensor v8 = own ? ctx.alloc({C * fp8_flash_keys(Lk)}, DType::U8) : ctx.alloc({Lk * C}, DType::U8);
  Tensor scales = ctx.alloc({16}, DType::F32), amax = ctx.alloc({4}, DType::F32);
  Tensor sums = ctx.alloc({3 * C}, DType::F32);
  Tensor work = ctx.alloc({fp8_quantise_workspace_floats(3, C, std::max(Lq, valid))}, DType::F32);
  float* sc = scales.data<float>();
  float* sum = sums.data<float>();
  auto u8 = [](Tensor& t) { return static_cast<uint8_t*>(t.raw()); };
  const bool rotate = fp8_rotates(D);
  Fp8Operand ops[3];
  ops[0] = {bp(q), Lq, Lq, false, rotate, u8(q8), sum, sc, nullptr};
  ops[1] = {bp(k), Lk, valid, true, rotate, u8(k8), sum + C, sc + 4, nullptr};
  ops[2] = {bp(v), Lk, valid, true, false, own ? nullptr : u8(v8), sum + 2 * C, sc + 8, sc + 12};
  {
    Context::Scope step(ctx, kDetail, 0, "attention.fp8_quantise");
    quantise_fp8_operands(ops, 3, C, D, amax.data<float>(), work.data<float>(), ctx.stream);
  }
  // Our own kernel (fp8_flash.h) where it serves the shape: bf16 output with v's mean, no
  // codes, one call over all keys.
  if (own) {
    {
      Context::Scope step(ctx, kDetail, 0, "attention.fp8_vt");
      fp8_flash_quantise_v(bp(v), Lk, C, sum + 2 * C, valid, sc + 12, u8(v8), ctx.stream);
    }
    Fp8FlashCall call;
    call.q8 = u8(q8);
    call.k8 = u8(k8);
    call.vt = u8(v8);
    call.descale_q = sc;
    call.descale_k = sc + 4;
    call.descale_v = sc + 8;
    call.v_sum = sum + 2 * C;
    call.inv_valid = 1.0f / static_cast<float>(valid);
    call.o = o;
    call.lse = lse;
    call.Lq = Lq;
    call.Lk = Lk;
    call.H = H;
    call.valid = valid;
    {
      Context::Scope step(ctx, kDetail, 0, "attention.fp8_kernel");
      fp8_flash_attention(call, ctx.stream);
    }
    if (lse) fp8_lse_add_k_mean(bp(q), Lq, H, D, sum + C, valid, rotate, lse, ctx.stream);  // of the true scores
    return true;
  }
  Tensor o8 = codes ? ctx.alloc({Lq, C}, DType::F8E4M3) : Tensor();
  bool wrote_codes = false;
  if (!cudnn.run_fp8(u8(q8), u8(k8), u8(v8), sc, sum + 2 * C, o, lse, Lq, Lk, H, D, valid, kv_chunk,
                     codes ? u8(o8) : nullptr, &wrote_codes))
    return false;
  if (wrote_codes) {
    Tensor offset = ctx.alloc({C}, DType::F32);
    column_mean(sum + 2 * C, valid, C, offset.data<float>(), ctx.stream);
    *codes = Fp8Rows{o8, scales.bytes_view(8 * sizeof(float), {1}, DType::F32), offset};
  }
  if (lse) fp8_lse_add_k_mean(bp(q), Lq, H, D, sum + C, valid, rotate, lse, ctx.stream);  // of the true scores
  return true;
}

Tensor unmasked_attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, int64_t valid, Tensor* lse,
                          Fp8Rows* codes) {
  const int64_t Lq = q.dim(0), Lk = k.dim(0), H = q.dim(1), D = q.dim(2);
  if (!ctx.cudnn && !flash_attention_supports(D))
    return H == 1 ? attention_by_gemm(ctx, q, k, v, valid, lse) : attention_on_cpu(ctx, q, k, v, valid, lse);
  Tensor o = ctx.alloc(q.shape(), DType::BF16);
  float* l = nullptr;
  if (lse) {
    *lse = ctx.alloc({H, Lq}, DType::F32);
    l = lse->data<float>();
  }
  if (!ctx.opt.fp8_attention_codes) codes = nullptr;
  {
    Context::Scope s(ctx, kAttention, 4.0 * Lq * valid * H * D);
    if (ctx.cudnn && ctx.cudnn->fp8() && valid >= kFp8MinKeys &&
        fp8_attention(*ctx.cudnn, ctx, q, k, v, valid, bp(o), l, kFp8KvChunkFromEnv, codes))
      return codes && codes->held() ? Tensor() : o;
    Context::Scope step(ctx, kDetail, 0, valid >= kFp8MinKeys ? "attention.bf16_self" : "attention.bf16_few_keys");
    if (ctx.cudnn && ctx.cudnn->run(bp(q), bp(k), bp(v), bp(o), l, Lq, Lk, H, D, valid)) return o;
    if (flash_attention_supports(D)) {
      flash_attention(bp(q), bp(k), bp(v), bp(o), l, Lq, Lk, H, D, valid, ctx.stream);
      return o;
    }
  }
  if (H == 1) return attention_by_gemm(ctx, q, k, v, valid, lse);
  return attention_on_cpu(ctx, q, k, v, valid, lse);
}

}  // namespace

Tensor attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, AttentionMask mask, Tensor* lse,
                 Fp8Rows* codes) {
  if (mask.causal) return masked_attention(ctx, q, k, v, mask, lse);
  const int64_t Hq = q.dim(1), Hkv = k.dim(1);
  if (Hq == Hkv) return unmasked_attention(ctx, q, k, v, mask.k_valid, lse, codes);
  // Grouped-query heads without a causal mask: each key/value head repeated for its query
  // heads, so every kernel below serves it unchanged.
  Tensor kr = ctx.alloc({k.dim(0), Hq, k.dim(2)}, DType::BF16), vr = ctx.alloc(kr.shape(), DType::BF16);
  repeat_heads(bp(k), bp(kr), k.dim(0), Hkv, Hq / Hkv, k.dim(2), ctx.stream);
  repeat_heads(bp(v), bp(vr), v.dim(0), Hkv, Hq / Hkv, v.dim(2), ctx.stream);
  return unmasked_attention(ctx, q, kr, vr, mask.k_valid, lse, codes);
}

void merge_attention(Context& ctx, Tensor& out, Tensor& lse, const Tensor& part, const Tensor& part_lse) {
  Context::Scope s(ctx, kAttention);
  cuda::merge_attention(bp(out), lse.data<float>(), bp(part), part_lse.data<float>(), out.dim(0), out.dim(1),
                        out.dim(2), ctx.stream);
}

Tensor attention_fp8(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, int64_t k_valid, Tensor* lse,
                     int64_t kv_chunk) {
  CudnnAttention* cudnn = ctx.cudnn.get();
  if (!cudnn) {
    if (!ctx.cudnn_fp8_op) ctx.cudnn_fp8_op = std::make_unique<CudnnAttention>(ctx.stream);
    cudnn = ctx.cudnn_fp8_op.get();
  }
  if (!cudnn->available()) fail("attention_fp8: ", cudnn->describe());
  const int64_t Lq = q.dim(0), H = q.dim(1), D = q.dim(2);
  Tensor o = ctx.alloc(q.shape(), DType::BF16);
  float* l = nullptr;
  if (lse) {
    *lse = ctx.alloc({H, Lq}, DType::F32);
    l = lse->data<float>();
  }
  Context::Scope s(ctx, kAttention, 4.0 * Lq * k_valid * H * D);
  if (!fp8_attention(*cudnn, ctx, q, k, v, k_valid, bp(o), l, kv_chunk))
    fail("attention_fp8: ", cudnn->describe(), " has no fp8 attention plan for q ", shape_str(q.shape()), " k ",
         shape_str(k.shape()), " (head size a multiple of 16 up to 256, Hopper or newer)");
  return o;
}

bool prepare_attention(Context& ctx, int64_t Lq, int64_t Lk, int64_t H, int64_t D, bool lse) {
  if (!ctx.cudnn) return false;
  // cuDNN's fp8 plan only where its kernel will run: ours needs none.
  const bool fp8 = ctx.cudnn->fp8() && Lk >= kFp8MinKeys && !own_fp8_serves(ctx, D, Lk, Lk, kFp8KvChunkFromEnv);
  return ctx.cudnn->prepare(Lq, Lk, H, D, lse, fp8, kFp8KvChunkFromEnv);
}

void set_attention_kernel(Context& ctx, AttentionKernel k) {
  if (k == AttentionKernel::Default) {
    const char* e = std::getenv("RAYLIGHT_ATTENTION");
    const std::string v = e ? e : "cudnn";
    if (!attention_kernel_from_name(v, &k)) fail("RAYLIGHT_ATTENTION must be cudnn, own or fp8, got '", v, "'");
  }
  if (k == AttentionKernel::Own) {
    ctx.cudnn.reset();
    return;
  }
  if (ctx.cudnn) {
    ctx.cudnn->set_fp8(k == AttentionKernel::Fp8);
    return;
  }
  ctx.cudnn = std::make_unique<CudnnAttention>(ctx.stream);
  ctx.cudnn->set_fp8(k == AttentionKernel::Fp8);
  if (!ctx.cudnn->available()) {
    static bool noted = false;
    if (!noted) std::fprintf(stderr, "raylight: %s; attention uses raylight's own kernel\n", ctx.cudnn->describe().c_str());
    noted = true;
    ctx.cudnn.reset();
  }
}

std::string attention_kernel(const Context& ctx) {
  if (!ctx.cudnn) return "own mma.sync flash-attention kernel";
  if (ctx.cudnn->fp8() && ctx.opt.fp8_own_kernel)
    return "raylight's wgmma fp8 flash attention (hd 128; " + ctx.cudnn->describe() + " for other shapes)";
  return ctx.cudnn->describe() + (ctx.cudnn->fp8() ? " fp8 fused attention" : " fused attention");
}

}  // namespace raylight::cuda::op

namespace raylight {

bool attention_kernel_from_name(const std::string& name, AttentionKernel* out) {
  if (name == "cudnn") *out = AttentionKernel::Cudnn;
  else if (name == "own") *out = AttentionKernel::Own;
  else if (name == "fp8") *out = AttentionKernel::Fp8;
  else return false;
  return true;
}

}  // namespace raylight
