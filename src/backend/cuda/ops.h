// The CUDA backend's ops, one group per file, each a function of the shared Context (see
// context.h). cuda_backend.cpp routes the Backend interface here; operands arrive checked.
#pragma once

#include <string>
#include <vector>

#include "backend/cuda/context.h"
#include "backend/linear_plans.h"

namespace raylight::cuda::op {

// ops_matmul.cpp: cuBLASLt products (bf16 or fp8 weights), GELU fused in the epilogue.
// x_absmax (undefined or fp32 [1]): max |x|, so an fp8 product quantises x without a pass
// of its own measuring it.
Tensor linear(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& x_absmax);
Tensor linear_gelu_tanh(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& x_absmax);
// linear of [a | b] as two products, the second accumulating (beta 1) over w's columns.
Tensor linear_pair(Context& ctx, const Tensor& a, const Tensor& b, const Tensor& w, const Tensor& bias);
// Products over one x with one fp8 quantisation of it (Backend::linears).
std::vector<Tensor> linears(Context& ctx, const Tensor& x, const std::vector<LinearTerm>& terms,
                            const Tensor& x_absmax);
// The plans these products' first calls would make, made now (LinearPlans::prepare_linears):
// the same choices as the calls (fp8 or bf16 product, the epilogue's fallback), timing on
// scratch allocated here and freed before returning.
bool prepare_linears(Context& ctx, const std::vector<LinearShape>& shapes);

// ops_pointwise.cpp: activations, adds, the DiT's modulation.
Tensor gelu_tanh(Context& ctx, const Tensor& x);
Tensor gelu_erf(Context& ctx, const Tensor& x);
Tensor silu(Context& ctx, const Tensor& x);
Tensor quick_gelu(Context& ctx, const Tensor& x);
Tensor swiglu(Context& ctx, const Tensor& gate, const Tensor& up);
Tensor add(Context& ctx, const Tensor& a, const Tensor& b);
void add_gated(Context& ctx, Tensor& x, const Tensor& y, const Tensor& gate);
Tensor modulate(Context& ctx, const Tensor& x, const Tensor& shift, const Tensor& scale);

// ops_norm.cpp: row norms (LayerNorm, RMSNorm, LayerNorm fused with the DiT's modulation);
// absmax (null or set): max |result| as stored, fp32 [1], written by the norm's kernel.
Tensor layer_norm(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b, float eps);
Tensor rms_norm(Context& ctx, const Tensor& x, const Tensor& w, float eps);
Tensor layer_norm_modulate(Context& ctx, const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                           bool f32_out, Tensor* absmax);
// x plus one or two gated updates in turn, then LayerNorm (affine, modulation) of the sum
// in one pass; the sum stored into *sum (x itself) when given, else x only read.
Tensor gated_sum_layer_norm(Context& ctx, const Tensor& x, const std::vector<GatedUpdate>& updates, Tensor* sum,
                            const Tensor& w, const Tensor& b, const Tensor& shift, const Tensor& scale, float eps,
                            Tensor* absmax);
// q/k RMSNorm + RoPE (+ the q/k/v split of a fused product), qk_norm_rope.cu.
void qkv_norm_rope(Context& ctx, const Tensor& qkv, const Tensor& q_w, const Tensor& k_w, QkNormSpan span, float eps,
                   const Tensor& table, Tensor& q, Tensor& k, Tensor& v, int64_t row0);
Tensor norm_rope(Context& ctx, const Tensor& x, const Tensor& w, QkNormSpan span, float eps, const Tensor& table,
                 int64_t heads);

// ops_layout.cpp: copies, row stacking, rotary embedding, the Ulysses head packing,
// latent <-> token layout.
Tensor copy(Context& ctx, const Tensor& x);
Tensor concat_rows(Context& ctx, const Tensor& a, const Tensor& b);
Tensor concat_columns(Context& ctx, const Tensor& a, const Tensor& b);
void apply_rope(Context& ctx, Tensor& x, const Tensor& table, RopePairs pairs, int64_t first_token);
Tensor swap_leading(Context& ctx, const Tensor& x);
Tensor patchify(Context& ctx, const Tensor& x, PatchSize p);
Tensor unpatchify(Context& ctx, const Tensor& t, int64_t gf, int64_t gh, int64_t gw, int64_t c, PatchSize p);

// ops_attention.cpp: attention (cuDNN, our flash kernel, GEMMs for one wide head, the
// masked-row kernel for causal masks, the CPU for the rest), the Ring merge by log-sum-exp,
// and the choice of kernel.
// codes (or null): filled instead of returning the output where fp8 attention wrote e4m3 (Backend::attention).
Tensor attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, AttentionMask mask, Tensor* lse,
                 Fp8Rows* codes = nullptr);
void merge_attention(Context& ctx, Tensor& out, Tensor& lse, const Tensor& part, const Tensor& part_lse);
void set_attention_kernel(Context& ctx, AttentionKernel k);
// fp8 attention (backend/fp8_attention.h) on cuDNN's fp8 engine; fails where it has no plan.
Tensor attention_fp8(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, int64_t k_valid, Tensor* lse,
                     int64_t kv_chunk);
bool prepare_attention(Context& ctx, int64_t Lq, int64_t Lk, int64_t H, int64_t D, bool lse);
std::string attention_kernel(const Context& ctx);

// ops_fp8_rows.cpp: rows held as fp8 codes (backend/fp8_rows.h): their bf16 values, and a
// product over them (fp8 weights: the fp8 GEMM on the codes, the offset folded into the bias).
Tensor dequantise(Context& ctx, const Fp8Rows& x);
Tensor linear_fp8_rows(Context& ctx, const Fp8Rows& x, const Tensor& w, const Tensor& b);

// ops_t5_attention.cpp: T5's offset-biased attention.
Tensor attention_offset_bias(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias,
                             float scale);

// ops_vae.cpp: the VAE's convolutions, norms and upsampling.
Tensor conv3d(Context& ctx, const Tensor& x, const Tensor& past, const Tensor& w, const Tensor& b,
              const Backend::Conv3dSpec& spec);
Tensor channel_rms_norm(Context& ctx, const Tensor& x, const Tensor& gamma, bool silu);
Tensor group_norm(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b, const Backend::GroupNormSpec& spec);
Tensor upsample_nearest2x(Context& ctx, const Tensor& x);

}  // namespace raylight::cuda::op
