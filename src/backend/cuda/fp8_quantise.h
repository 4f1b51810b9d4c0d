// The quantisation in front of fp8 attention: per-tensor e4m3 scales computed on the device
// (amax, then scale = 448 / amax), so a call needs no host round trip. q and k are rotated
// per head first (backend/fp8_rotation.h: a signed Hadamard transform that leaves q . k
// unchanged and spreads outlier channels). K and V are smoothed: the mean over the valid
// keys of each (head, channel) is subtracted. For K that leaves every softmax row unchanged
// (q . mean is one constant per row; fp8_lse.h adds it back to the lse); for V the mean is
// added back to the output (rows of P
// sum to 1), so the fp8 product and fp8 output only carry what varies (SageAttention's
// smoothing). The CPU emulation (backend/cpu/attention_fp8) does the same arithmetic.
//
// Passes over the operands: one that reads q, k and v together for per-column partial
// statistics (sum, max, min of the rotated values: the centred amax is max over columns of
// max - mean and mean - min, so smoothing needs no second statistics pass), a small one that
// folds the partials into column sums and each operand's amax, and one that quantises all
// three (rotation, mean, scale and e4m3 in one go). In both big passes a thread holds 32
// columns of a row (for a rotated operand: a head of D = 32, or a quarter of each of D / 32
// neighbouring lanes' head), so the rotation's butterflies run in registers but for log2(D /
// 32) stages across lanes; its rows come through shared memory a few rows ahead (cp.async).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/fp8_kv_chunks.h"

namespace raylight::cuda {

using bf16 = __nv_bfloat16;

// P's fp8 scale in the second product (P <= 1 maps onto e4m3's largest finite value).
constexpr float kFp8PScale = 448.0f;

// One operand of fp8 attention, [rows, C] bf16 with C = heads x D.
struct Fp8Operand {
  const bf16* x = nullptr;
  int64_t rows = 0;       // rows quantised
  int64_t stat_rows = 0;  // rows [0, stat_rows) set the scale and the mean (the valid keys)
  bool smooth = false;    // subtract the column mean over the stat rows
  bool rotate = false;    // the per-head rotation first (q and k alike; D must be fp8_rotates)
  uint8_t* y = nullptr;   // e4m3 codes [rows, C], or null: the statistics, sum and scales only
                          // (fp8_flash_quantise_v writes V's codes in our kernel's layout)
  float* sum = nullptr;   // [C] written when given (required to smooth; 16-byte aligned): column
                          // sums over the stat rows, of the rotated values where it rotates
  float* descale = nullptr;  // [1] written: 1 / scale
  float* scale = nullptr;    // [1] written when given: the scale
};

// Floats of workspace quantise_fp8_operands needs for `count` operands of C columns whose
// largest stat_rows is max_stat_rows, on the current device (the statistics are split to fit
// its occupancy: size it with the same arguments as the call).
int64_t fp8_quantise_workspace_floats(int count, int64_t C, int64_t max_stat_rows);

// Quantises up to three operands: scale = 448 / amax (1 when amax is 0 or not finite; a
// non-finite input makes amax non-finite), y = e4m3(clamp((rotate(x) - mean) * scale)),
// mean = sum * (1 / stat_rows) with 1 / stat_rows rounded on the host and each step rounded
// on its own (the host can repeat every code: tests/cuda/test_cuda_fp8_quantise.cpp).
// C % D == 0, D % 8 == 0, stat_rows <= rows; x 16-byte, y 8-byte, workspace 16-byte aligned.
// amax: `count` floats, the operands' amax (zeroed here).
void quantise_fp8_operands(const Fp8Operand* ops, int count, int64_t C, int64_t D, float* amax, float* workspace,
                           cudaStream_t s);

// y[i] = bf16(e4m3 x[i] * descale[0] + mean[i % C]), mean = sum / n (sum may be null: 0).
// count and C multiples of 8 (x 8-byte, y 16-byte aligned), as the next one.
void fp8_to_bf16(const uint8_t* x, int64_t count, const float* descale, int64_t C, const float* sum, int64_t n,
                 bf16* y, cudaStream_t s);
// y[i] += sum[i % C] / n in place (V's mean added back to a bf16 output).
void add_column_mean(bf16* y, int64_t count, int64_t C, const float* sum, int64_t n, cudaStream_t s);

// The outputs of one fp8 attention call run over key chunks (backend/fp8_kv_chunks.h): per
// chunk cuDNN's output [Lq, H, D] (e4m3 codes scaled like v, or bf16 where cuDNN gives bf16)
// and its lse [H, Lq].
struct Fp8Parts {
  const void* out[kFp8MaxKvChunks] = {};
  const float* lse[kFp8MaxKvChunks] = {};
  int count = 0;
  bool codes = true;  // e4m3 codes (times descale[0]); false: bf16
};

// Replaces fp8_to_bf16 for a chunked call, in one pass: lse = log sum_c exp(lse_c),
// y = sum_c exp(lse_c - lse) o_c + sum / n (v's mean; sum may be null), and the lse into
// lse_out [H, Lq] when given (of the smoothed scores: fp8_lse.h corrects it after). D and
// H * D multiples of 8.
void merge_fp8_parts(const Fp8Parts& parts, int64_t Lq, int64_t H, int64_t D, const float* descale, const float* sum,
                     int64_t n, bf16* y, float* lse_out, cudaStream_t s);

}  // namespace raylight::cuda
