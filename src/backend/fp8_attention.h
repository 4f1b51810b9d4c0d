// fp8 attention: what `--attention fp8` computes, as an op both backends offer (the CPU one
// an exact emulation, the CUDA one cuDNN's fp8 flash attention), so the op suite can hold
// the GPU path to its own arithmetic rather than only to bf16 attention.
//
// The arithmetic: q and k rotated per head by the same signed Hadamard transform
// (backend/fp8_rotation.h, for head sizes 16 to 256 that are powers of two: q . k unchanged,
// outlier channels spread over the head); k and v smoothed (the mean over the valid keys of
// each head channel subtracted: softmax rows do not change, and v's mean is added back at the
// end since rows of P sum to 1); q, k, v each quantised to e4m3 with one scale per tensor
// (448 / max |x|, over the valid keys for k and v); S = q8 k8^T * descales / sqrt(D);
// P = softmax(S) (exact); P quantised to e4m3 before its row sum divides it,
// as exp(S - row max) * 448 (cuDNN's flash kernel applies P's scale there: on an H200 a 16x
// larger scale saturated, which normalised P, at most 0.03 at 32,760 keys, would not);
// O = P8 v8 / 448 * dv / sum, itself rounded to e4m3 with v's scale (cuDNN's fp8 attention on
// Hopper writes fp8 only; a bf16 output, where cuDNN offers one (Blackwell), is closer to
// exact than this), plus v's mean.
// The lse returned is of the true scores q k^T / sqrt(D), as Backend::attention's: that of S
// plus q . mean_k / sqrt(D) (the shift smoothing gave every score of the row; fp32 from the
// unquantised q and k's mean rotated back), so calls over different keys, each smoothed by its
// own mean, merge by it (Ring attention's key blocks, or an fp8 block with a bf16 one).
// Long calls may run over key chunks merged by their log-sum-exp (backend/fp8_kv_chunks.h):
// each chunk's softmax, P and e4m3 output are its own (P against the chunk's row maximum),
// the quantisation of q, k, v stays one over all valid keys, and the merge is exact:
// O = sum_c exp(lse_c - lse) O_c + v's mean, lse = log sum_c exp(lse_c) (then the shift above,
// once: the chunks share the call's one mean).
// Kept apart from the Backend interface (a mix-in found by dynamic_cast) so that adding it
// did not touch backend.h.
#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "backend/fp8_kv_chunks.h"

namespace raylight {

class Fp8AttentionOps {
 public:
  virtual ~Fp8AttentionOps() = default;
  // Operands checked by attention_fp8(): q [Lq, H, D], k/v [Lk, H, D], Lq >= 1,
  // k_valid in [1, Lk]; kv_chunk resolved (a key count, kFp8KvChunkRule or kFp8KvChunkOff).
  virtual Tensor attention_fp8_impl(const Tensor& q, const Tensor& k, const Tensor& v, int64_t k_valid, Tensor* lse,
                                    int64_t kv_chunk) = 0;
};

// softmax(q k^T / sqrt(D)) v with fp8 operands as above; lse as Backend::attention gives it.
// kv_chunk: the key chunking (backend/fp8_kv_chunks.h; by default RAYLIGHT_FP8_KV_CHUNK, else
// the built-in rule, as --attention fp8 runs it). Refuses operands attention() refuses,
// grouped heads, a chunk setting that is none of those, and a backend without fp8 attention.
Tensor attention_fp8(Backend& be, const Tensor& q, const Tensor& k, const Tensor& v, int64_t k_valid, Tensor* lse,
                     int64_t kv_chunk = kFp8KvChunkFromEnv);

}  // namespace raylight
