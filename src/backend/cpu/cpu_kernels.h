// The CPU reference kernels, plain functions over contiguous fp32 host tensors, private to
// the CPU backend (cpu_backend.cpp forwards its *_impl functions to them). Operands are
// already checked by the public ops (backend.cpp, ops/*.cpp): kernels do only the math.
#pragma once

#include "backend/backend.h"

namespace raylight::cpu {

// Stored weight bytes (any dtype) * scale as a fresh fp32 tensor (never a view of the input).
Tensor dequantize(const Tensor& stored, float scale);
// Rows held as fp8 codes (backend/fp8_rows.h) as fp32: code * scale + offset[col], each
// element computed in double and rounded once.
Tensor dequantise(const Fp8Rows& x);
Tensor concat_rows(const Tensor& a, const Tensor& b);
Tensor concat_columns(const Tensor& a, const Tensor& b);
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps);
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps);
Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale);
void add_gated(Tensor& x, const Tensor& y, const Tensor& gate);
// max |x| over every element as fp32 [1] (NaN skipped; 0 for none): a norm's absmax output.
Tensor absmax(const Tensor& x);
Tensor gelu_tanh(const Tensor& x);
Tensor gelu_erf(const Tensor& x);
Tensor silu(const Tensor& x);
Tensor quick_gelu(const Tensor& x);
Tensor swiglu(const Tensor& gate, const Tensor& up);
Tensor add(const Tensor& a, const Tensor& b);
void apply_rope(Tensor& x, const Tensor& table, RopePairs pairs, int64_t first_token);
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, AttentionMask mask, Tensor* lse);
// fp8 attention's emulation (attention_fp8.cpp, backend/fp8_attention.h): equal heads, keys
// [0, valid), over key chunks as kv_chunk (a resolved setting, backend/fp8_kv_chunks.h) says.
Tensor attention_fp8(const Tensor& q, const Tensor& k, const Tensor& v, int64_t valid, Tensor* lse, int64_t kv_chunk);
Tensor attention_offset_bias(const Tensor& q, const Tensor& k, const Tensor& v,
                             const Tensor& bias_by_offset, float scale);
Tensor swap_leading(const Tensor& x);
void merge_attention(Tensor& out, Tensor& lse, const Tensor& part, const Tensor& part_lse);
// q/k RMSNorm + RoPE + the q/k/v split (qk_norm_rope.cpp); table host fp32 or undefined.
void qkv_norm_rope(const Tensor& qkv, const Tensor& q_weight, const Tensor& k_weight, QkNormSpan span, float eps,
                   const Tensor& table, Tensor& q, Tensor& k, Tensor& v, int64_t row0);
Tensor norm_rope(const Tensor& x, const Tensor& weight, QkNormSpan span, float eps, const Tensor& table,
                 int64_t heads);
Tensor patchify(const Tensor& x, PatchSize p);
Tensor unpatchify(const Tensor& tokens, int64_t gf, int64_t gh, int64_t gw, int64_t channels,
                  PatchSize p);

// VAE kernels over frame-major clips [T, C, H, W] (conv3d.cpp, conv_channel_ops.cpp, group_norm.cpp).
Tensor conv3d(const Tensor& x, const Tensor& past, const Tensor& w, const Tensor& b,
              const Backend::Conv3dSpec& spec);
Tensor channel_rms_norm(const Tensor& x, const Tensor& gamma, bool silu);
Tensor group_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Backend::GroupNormSpec& spec);
Tensor upsample_nearest2x(const Tensor& x);

}  // namespace raylight::cpu
