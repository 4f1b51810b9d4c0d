// Host-side launchers of the CUDA backend's kernels, one declaration per kernel family.
// Activations are bf16 on the device with fp32 arithmetic inside every kernel; the
// launchers check their launch and return immediately (work is queued on `s`).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"

namespace raylight::cuda {

using bf16 = __nv_bfloat16;

// --- elementwise.cu --------------------------------------------------------------
enum class Unary { GeluTanh, GeluErf, Silu };
// y[i] = stored[i] * scale as bf16, from any float storage dtype.
void convert_to_bf16(const void* src, DType from, float scale, bf16* dst, int64_t n, cudaStream_t s);
void bf16_to_f32(const bf16* src, float* dst, int64_t n, cudaStream_t s);
void unary(Unary op, const bf16* x, bf16* y, int64_t n, cudaStream_t s);
void add(const bf16* a, const bf16* b, bf16* y, int64_t n, cudaStream_t s);
// x[r, c] += y[r, c] * gate[c] (gate may be null: plain residual add).
void add_gated(bf16* x, const bf16* y, const bf16* gate, int64_t rows, int64_t cols, cudaStream_t s);
// y = x * (1 + scale[c]) + shift[c]
void modulate(const bf16* x, const bf16* shift, const bf16* scale, bf16* y, int64_t rows,
              int64_t cols, cudaStream_t s);
// amax[0] = max |x| (amax must be zeroed first, done here with an async memset).
void absmax(const bf16* x, int64_t n, float* amax, cudaStream_t s);
// y = e4m3(x / sx) with sx = max(amax, tiny) / 448, written to *scale_out for the GEMM.
void quantize_e4m3(const bf16* x, int64_t n, const float* amax, uint8_t* y, float* scale_out,
                   cudaStream_t s);
// Per-row e4m3 quantisation for fp8 products with per-row activation scales (cuBLASLt's
// outer-vector scaling): row r's own max |x| (NaN skipped, as absmax() does) sets it, the
// codes round as quantize_e4m3's (y = e4m3(x * 448 / max(amax, 1e-12))) and row_descale[r] =
// max(amax, 1e-12) / 448 is what the product multiplies back. One pass over x: no absmax pass.
// row_descale 16-byte aligned (cuBLASLt's scale pointers).
void quantize_rows_e4m3(const bf16* x, int64_t rows, int64_t cols, uint8_t* y, float* row_descale, cudaStream_t s);
// y[i] = v for i < n.
void fill_f32(float* y, int64_t n, float v, cudaStream_t s);
// Counter-based Gaussian fill (benchmarks): y = mean + std * N(0, 1).
void random_bf16(bf16* y, int64_t n, uint64_t seed, float mean, float std, cudaStream_t s);
// fp8 codes of std * N(0, 1) / scale (saturating).
void random_e4m3(uint8_t* y, int64_t n, uint64_t seed, float std, float scale, cudaStream_t s);

// --- activations.cu ----------------------------------------------------------------
// y = x * sigmoid(1.702 x)
void quick_gelu(const bf16* x, bf16* y, int64_t n, cudaStream_t s);
// y = silu(gate) * up
void swiglu(const bf16* gate, const bf16* up, bf16* y, int64_t n, cudaStream_t s);

// --- norm.cu ---------------------------------------------------------------------
// Row-wise LayerNorm (rms == false) or RMSNorm (rms == true) over `cols`, then optional
// affine (weight, bias) and optional modulation (* (1 + scale) + shift). Null = absent.
// x is fp32 when x_f32 (else bf16); shift and scale are fp32 when mod_f32 (else bf16); y
// is bf16, or fp32 when y_f32 (then x and the modulation must be fp32 too).
// With add.y: x + add.y * add.gate first (gate null: a plain add; gate of the modulation's
// dtype), then + add.then's update where given (each sum rounded to x's dtype), written back
// to x when add.store, and the summed rows normed: gated residuals and the next norm in one
// pass. With amax: *amax = max |y| over y as stored (zeroed here first; NaN skipped, as
// absmax() does), so the fp8 product over y needs no absmax pass of its own.
struct GatedRows {
  const bf16* y = nullptr;
  const void* gate = nullptr;
};
struct ResidualAdd {
  const bf16* y = nullptr;
  const void* gate = nullptr;
  GatedRows then;     // a second update after the first (y null: none)
  bool store = true;  // the sum written back to x (false: x only read)
};
void row_norm(const void* x, bool x_f32, const bf16* weight, const bf16* bias, const void* shift,
              const void* scale, bool mod_f32, void* y, bool y_f32, int64_t rows, int64_t cols, float eps, bool rms,
              cudaStream_t s, ResidualAdd add = {}, float* amax = nullptr);

// --- qk_norm_rope.cu -----------------------------------------------------------------
// Source rows of q, k and v (k and v may be null), `stride` elements apart.
struct QkRows {
  const bf16 *q = nullptr, *k = nullptr, *v = nullptr;
  int64_t stride = 0;
};
// For each of `rows` rows: q and k RMS-normed per head (per_head, weights [D]) or over the
// row (weights [H*D]), turned by table [rows, D/2, 2] (adjacent pairs; null: not turned),
// written to q / k [rows, H, D]; v copied to v.
void qk_norm_rope(const QkRows& src, const bf16* q_w, const bf16* k_w, bool per_head, float eps, const float* table,
                  bf16* q, bf16* k, bf16* v, int64_t rows, int64_t H, int64_t D, cudaStream_t s);

// --- precise.cu: fp32 operands (the DiT residual stream, modulation, time embedding) -----
// A value of either activation type: fp32 or bf16.
struct AnyRow {
  const void* p = nullptr;
  bool f32 = false;
};
// y = a + b (y fp32 when y_f32, else bf16).
void add_mixed(AnyRow a, AnyRow b, void* y, bool y_f32, int64_t n, cudaStream_t s);
// x[r, c] += y[r, c] * gate[c] (gate.p may be null) with x fp32 or bf16.
void add_gated_mixed(void* x, bool x_f32, AnyRow y, AnyRow gate, int64_t rows, int64_t cols, cudaStream_t s);
// y = silu(x), fp32.
void silu_f32(const float* x, float* y, int64_t n, cudaStream_t s);

// --- linear_f32.cu ----------------------------------------------------------------
// y[M, N] = x[M, K] w[N, K]^T (+ bias) with fp32 x, y and arithmetic; w bf16, fp32, or fp8
// e4m3 codes times w_scale; bias bf16 or null. For the products that stay in fp32 (time
// embedding: M = 1; the DiT head: N = 64), not a substitute for cuBLASLt.
void linear_f32(const float* x, const void* w, DType w_type, float w_scale, const bf16* bias, float* y, int64_t M,
                int64_t N, int64_t K, cudaStream_t s);

// --- layout.cu -------------------------------------------------------------------
// x [L, H, D] rotated in place by table [L, D/2, 2] fp32 (cos, sin): pairs (2i, 2i+1).
void rope(bf16* x, const float* table, int64_t L, int64_t H, int64_t D, cudaStream_t s);
// The same with pairs (i, i + D/2) (rope_halves.cu).
void rope_halves(bf16* x, const float* table, int64_t L, int64_t H, int64_t D, cudaStream_t s);
void patchify(const bf16* x, bf16* y, int64_t C, int64_t F, int64_t H, int64_t W, int pt,
              int ph, int pw, cudaStream_t s);
// Tokens and result both fp32 when f32, else bf16.
void unpatchify(const void* t, void* y, bool f32, int64_t gf, int64_t gh, int64_t gw, int64_t C, int pt,
                int ph, int pw, cudaStream_t s);

// --- attention.cu ----------------------------------------------------------------
// Flash attention, bf16 in/out, fp32 softmax; q [Lq, H, D], k/v [Lk, H, D], o [Lq, H, D];
// keys >= k_valid are masked; lse (nullable) [H, Lq] natural log. D in {64, 128}.
void flash_attention(const bf16* q, const bf16* k, const bf16* v, bf16* o, float* lse,
                     int64_t Lq, int64_t Lk, int64_t H, int64_t D, int64_t k_valid,
                     cudaStream_t s);
bool flash_attention_supports(int64_t D);

}  // namespace raylight::cuda

namespace raylight::cuda {
// --- sequence_ops.cu (sequence-parallel helpers) -----------------------------------
// x [a, b, c] -> y [b, a, c]
void swap_leading(const bf16* x, bf16* y, int64_t a, int64_t b, int64_t c, cudaStream_t s);
// out/lse (accumulated over some keys) merged in place with part/part_lse over others.
void merge_attention(bf16* out, float* lse, const bf16* part, const float* part_lse, int64_t L,
                     int64_t H, int64_t D, cudaStream_t s);
}  // namespace raylight::cuda
