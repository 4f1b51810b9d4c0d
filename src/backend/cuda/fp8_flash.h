// Our own fp8 flash attention for Hopper (sm_90a), head size 128: the second half of
// `--attention fp8` once q, k and v are e4m3 codes (fp8_quantise.h: q and k rotated, k and v
// smoothed, one scale per tensor). Why our own and not cuDNN's: the output is written in bf16
// straight from the fp32 accumulators with v's mean added (cuDNN on Hopper writes e4m3 only,
// which costs a rounding and a conversion pass), and the kernel is ours to tune.
//
// The kernel (fp8_flash.cu): a block of 128 query rows of one head, three warpgroups. The
// first issues the bulk tensor copies (TMA) of the q tile and of each tile of K and V^T (128
// keys, or 192: fp8_flash_tile_keys_default) into a ring of shared-memory stages; the other
// two each own 64 query rows: S = Q K^T with wgmma (e4m3 x e4m3 -> fp32), the online softmax
// in registers, P in e4m3 (x 448) kept in registers as the A operand of O += P V^T. While one tile's softmax runs, the next tile's
// S and the previous tile's P V are in flight on the tensor cores.
//
// wgmma takes fp8 operands only K-major, so V comes transposed ([H x D] rows of keys, padded
// to fp8_flash_keys) and, within every 32 keys, in the order the accumulator layout of S
// leaves P's values in a thread (fp8_flash_key_order): P's registers then feed the second
// product as they are, with no shuffles.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace raylight::cuda {

using bf16 = __nv_bfloat16;

// True when fp8_flash_attention serves head size D on the current device (Hopper, D = 128).
bool fp8_flash_supports(int64_t D);

// The keys V^T holds per row: Lk rounded up to 32 (whole permutation groups).
inline int64_t fp8_flash_keys(int64_t Lk) { return (Lk + 31) / 32 * 32; }

// Position p (0..31) of a 32-key group of V^T holds key fp8_flash_key_order(p) of the group:
// p = 4t + e (+16) is byte e of the A-operand register a thread t of a quad holds, which the
// S accumulator gave as column 2t + (e & 1) + 8 (e >> 1) (+16).
#if defined(__CUDACC__)
__host__ __device__
#endif
inline constexpr int fp8_flash_key_order(int p) {
  return (p & 16) + 8 * ((p >> 1) & 1) + 2 * ((p >> 2) & 3) + (p & 1);
}

// vt[(h D + d) Lkp + 32 b + p] = v8[(32 b + key_order(p)) C + h D + d], 0 for keys >= Lk.
// v8: [Lk, C] e4m3 codes; C % 128 == 0; Lkp = fp8_flash_keys(Lk); 16-byte aligned.
void fp8_flash_transpose_v(const uint8_t* v8, int64_t Lk, int64_t C, uint8_t* vt, cudaStream_t s);
// The same vt straight from bf16 v [Lk, C], quantised as quantise_fp8_operands quantises an
// unrotated operand: the codes it would write, bit for bit, from the column sums (null: no
// smoothing) over rows [0, stat_rows) and the scale (a device scalar) it wrote for v when
// called with v's y left null. Saves V's codes' round trip through memory.
void fp8_flash_quantise_v(const bf16* v, int64_t Lk, int64_t C, const float* sum, int64_t stat_rows,
                          const float* scale, uint8_t* vt, cudaStream_t s);

// How the kernel computes P's exp2: fp32 on the special-function unit; f16 pairs (one
// special-function op for two values: P is rounded to e4m3 next, 16 x coarser than f16); fp32
// with one value in four by a cubic on the FMA units (the special-function unit is the
// bottleneck of an fp8 tile: 16 exp2 a clock against 8,192 FLOP of e4m3 products).
// F32AluPack: fp32 exp2 as F32, P's e4m3 codes made on the integer units rather than by the
// conversion instruction (the same codes but where a double rounding of a value under 2^-6
// lands on a tie).
// Codes: no exp2. P = 2^x gets the code round(8 x) + 56 (an e4m3 code is 8 x its exponent plus
// its mantissa, so this is 2^x between powers of two by a straight line: 3.2 % rms from 2^x
// against round-to-nearest's 2.7 %, and 4 % high on average, which the normalisation cancels),
// made by one FFMA and a max; P's row sums come from the tensor cores (a row of ones under
// V^T), so the softmax issues no exp2, conversion or add per value. Below 2^-6 (codes 0-7,
// e4m3's subnormals) the line is wrong, and below 2^-7 P is cut to 0. Each code's value is off
// from 2^x by its own factor (1 + M/8) / 2^(M/8), 1 to 1.06, on top of the rounding, yet that
// costs little: the codes' error was the row sums' (one tensor-core sum over a whole row drifts,
// fp8_flash.cu says how). Since the sums restart every tile (seventeenth session) Wan 14B's
// forward is 2.20 % from bf16 attention, as fp32 exp2's 2.21-2.22 % (3.6 % before), and the kernel
// runs 1,017-1,078 TFLOP/s at 32,760 keys x 40 heads (its four forms at 192 keys) against fp32
// exp2's 962-991 (and one 1,069) in the same call. The default since the eighteenth session: the
// full suites pass with it, a 30-step 1.3B sample ends 4.70 % from bf16 attention (fp32 exp2:
// 4.69 %), and Wan 14B forwards are 2.9 % (480p) and 4.1 % (720p) faster.
// F32Sums: fp32 exp2 as F32, P's row sums taken on the tensor cores as the codes' are (no add per
// value; the sums of the rounded P that P V uses). Level with F32 (949-1,007 against 962-991
// TFLOP/s, the same 2.2 % forward; seventeenth session); its lse carries P's rounding (within
// 2.1e-2 of exact against F32's 1e-2).
enum class Fp8FlashExp { F32 = 0, F16Pairs = 1, F32Poly = 2, F32AluPack = 3, Codes = 4, F32Sums = 5 };
constexpr int kFp8FlashExpModes = 6;
constexpr Fp8FlashExp kFp8FlashExps[kFp8FlashExpModes] = {Fp8FlashExp::F32,        Fp8FlashExp::F16Pairs,
                                                         Fp8FlashExp::F32Poly,    Fp8FlashExp::F32AluPack,
                                                         Fp8FlashExp::Codes,      Fp8FlashExp::F32Sums};
// Whether a form sums P's rows on the tensor cores (a row of ones under V^T).
constexpr bool fp8_flash_exp_sums_on_tensor_cores(Fp8FlashExp e) {
  return e == Fp8FlashExp::Codes || e == Fp8FlashExp::F32Sums;
}
const char* fp8_flash_exp_name(Fp8FlashExp e);
// RAYLIGHT_FP8_FLASH_EXP=f32|f16|poly|f32alu|codes|f32sums (read once); default codes (on an H200
// they win 5-8 % in the kernel at fp32 exp2's forward accuracy; against fp32 exp2 f16 pairs ran as
// single-value MUFU.EX2.F16 ops and lost 2-6 %, the cubic lost 1-6 %, the integer packing 21 %).
Fp8FlashExp fp8_flash_exp_default();
// RAYLIGHT_FP8_FLASH_PINGPONG=1|0 (read once); default on for 128-key tiles, off for 192.
bool fp8_flash_pingpong_default();
// Keys per tile (one softmax step): 128, or 192 (S in 96 registers a thread, V^T in three
// 64-key boxes; FlashAttention-3 takes 224 for fp8 at head size 128: fewer maxima, shuffles,
// barrier waits and ping-pong turns per key). RAYLIGHT_FP8_FLASH_KEYS=128|192 (read once);
// default 192 since the row maxima became trees (eleventh session): without ping-pong they ran
// Wan 14B forwards 1.2-1.6 % faster than 128-key tiles with it.
int fp8_flash_tile_keys_default();
// Blocks per cluster: 1, or 2 (two query blocks of one head each load half of every K and V^T
// tile and multicast it to both, halving what crosses from L2 to the SMs, which under the power
// cap is energy). RAYLIGHT_FP8_FLASH_CLUSTER=1|2 (read once); default 2 (1 where the deferred
// wait is asked for): since the stage releases stopped fencing at cluster scope
// and the producers relay them (fourteenth session) clusters run Wan 14B forwards about 1 %
// faster on an H200 (before, they ran 18-20 % slower).
int fp8_flash_cluster_default();
// Q held in registers as the A operand of S's products (fp32 exp2; other forms keep Q in shared
// memory), so they read only K from shared memory: less operand traffic, which under the power
// cap is energy. The same output bit for bit. RAYLIGHT_FP8_FLASH_QREGS=0|1 (read once); default 0:
// on an H200 it ran level with Q in shared memory at 192-key tiles in clusters of 2 (970-978
// against 971-972 TFLOP/s; forwards within 0.5 %), and lost elsewhere but at 128-key tiles
// without ping-pong.
bool fp8_flash_q_regs_default();
// The wait for the previous tile's P V deferred until the next tile's S is in flight (so the
// softmax overlaps that P V; fp8_flash.cu says why the classic order does not), for fp32 exp2
// in clusters of 1 with Q in shared memory (other forms keep the classic order); the same
// output bit for bit. RAYLIGHT_FP8_FLASH_DEFER=0|1 (read once); default 0: on an H200 it ran
// 7 % slower in the lab and 4 % slower in Wan 14B forwards (128-key tiles serialise: C7512).
bool fp8_flash_deferred_wait_default();

struct Fp8FlashCall {
  const uint8_t* q8 = nullptr;  // [Lq, H, 128] e4m3
  const uint8_t* k8 = nullptr;  // [Lk, H, 128] e4m3
  const uint8_t* vt = nullptr;  // fp8_flash_transpose_v's layout
  const float* descale_q = nullptr;  // device scalars: 1 / the quantisation scale
  const float* descale_k = nullptr;
  const float* descale_v = nullptr;
  const float* v_sum = nullptr;  // [H * 128] column sums of v over the valid keys (or null)
  float inv_valid = 0;           // 1 / valid, rounded on the host (v's mean = v_sum * inv_valid)
  bf16* o = nullptr;             // [Lq, H, 128]
  float* lse = nullptr;          // [H, Lq] natural-log lse of S = q k^T / sqrt(128), or null
  int64_t Lq = 0, Lk = 0, H = 0, valid = 0;  // keys [valid, Lk) are masked out
  Fp8FlashExp exp = fp8_flash_exp_default();
  // The two consumer warpgroups take turns issuing their products.
  bool pingpong = fp8_flash_pingpong_default();
  int tile_keys = fp8_flash_tile_keys_default();
  int cluster = fp8_flash_cluster_default();
  bool q_regs = fp8_flash_q_regs_default();
  bool deferred_wait = fp8_flash_deferred_wait_default();
};

// Blocks of the kernel the device holds at once with clusters of `cluster` (a GPC with an odd
// number of free SMs leaves one idle for clusters of two); 0 where it cannot say. For the lab.
int fp8_flash_resident_blocks(int tile_keys, int cluster);

// softmax(q k^T / sqrt(128)) v from the codes, as backend/fp8_attention.h defines it but for
// the output: fp32 accumulators divided by the row sum, times v's descale, plus v's mean,
// rounded once to bf16. P is e4m3 of exp(S - running row max) x 448.
void fp8_flash_attention(const Fp8FlashCall& call, cudaStream_t s);

}  // namespace raylight::cuda
