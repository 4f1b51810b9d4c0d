// Fused flash attention (forward) through cuDNN's backend (graph) API, in plain C calls:
// no cudnn-frontend. The graph is the SDPA pattern cuDNN's fused attention engines match:
//
//   S = Q K^T (fp32)  ->  S * scale  ->  padding mask (key j >= seq_len_kv -> -inf)
//     ->  softmax with stats (max, exp, sum, stats = max + log(sum), P = exp / sum, bf16)
//     ->  O = P V (bf16)
//
// q [Lq, H, D], k/v [Lk, H, D], o [Lq, H, D] are bf16 in our token-major layout (expressed
// to cuDNN as [1, H, L, D] with strides); the stats tensor [1, H, Lq, 1] fp32 is exactly our
// lse [H, Lq]: max + log(sum exp) of the *scaled* scores, natural log (the graph spells it
// with EXP and LOG), so it needs no conversion.
//
// fp8 (run_fp8): the same attention over e4m3 codes of q, k, v with device descales, P
// quantised to e4m3 (scale kFp8PScale) for the second product, bf16 out (cudnn_sdpa_fp8.cpp),
// or on request the e4m3 codes cuDNN writes on Hopper, handed to the caller as they are.
// A long call may run as one graph per key chunk (backend/fp8_kv_chunks.h: row ranges of
// K8/V8, each with its lse), merged by lse in the pass that also converts the output.
//
// Execution plans are built once per (Lq, Lk, H, D, lse wanted, fp8) and cached; the number of
// valid keys travels in a device int32 (the padding mask's per-batch seq_len_kv), so a
// changing text length does not rebuild anything. When cuDNN cannot build a plan for a shape
// (or the pointers are misaligned) run() returns false and the caller uses another kernel.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>

#include "backend/cuda/kernels.h"

namespace raylight::cuda {

class CudnnAttention {
 public:
  explicit CudnnAttention(cudaStream_t stream);
  ~CudnnAttention();
  CudnnAttention(const CudnnAttention&) = delete;
  CudnnAttention& operator=(const CudnnAttention&) = delete;

  // False if cuDNN is not compiled in or its handle could not be created.
  bool available() const;
  // "cuDNN 9.14.0" (the library loaded at run time), or why it is unavailable.
  std::string describe() const;

  // Queues the attention on the stream. Returns false (having queued nothing) when no plan
  // exists for this case; a one-time note per shape goes to stderr.
  bool run(const bf16* q, const bf16* k, const bf16* v, bf16* o, float* lse, int64_t Lq, int64_t Lk,
           int64_t H, int64_t D, int64_t k_valid);

  // fp8 attention: q/k/v are e4m3 codes in the same layout; scales is device fp32 with the
  // descales of q, k, v at [0], [4], [8] and v's scale at [12] (fp8_quantise.h writes them).
  // v_sum (device fp32 [H * D], or null): v was smoothed by v_sum / k_valid, added back to o.
  // kv_chunk: the key chunk setting (backend/fp8_kv_chunks.h); where it splits the call, one
  // graph per chunk with valid keys, merged by lse (kFp8KvChunkOff: always one graph).
  // False (nothing queued) when cuDNN has no fp8 plan for the shape (or for some chunk).
  // codes (or null, 16-byte aligned, [Lq, H * D]): where the call may leave O as cuDNN's e4m3
  // codes instead, scaled like v (descale at scales[8]) and without v's mean, when the graph
  // writes e4m3 and the call runs as one graph; *wrote_codes says whether it did (then o is
  // not written). The codes are the caller's own memory, not this object's scratch.
  bool run_fp8(const uint8_t* q, const uint8_t* k, const uint8_t* v, const float* scales, const float* v_sum, bf16* o,
               float* lse, int64_t Lq, int64_t Lk, int64_t H, int64_t D, int64_t k_valid, int64_t kv_chunk,
               uint8_t* codes = nullptr, bool* wrote_codes = nullptr);

  // Whether attention() runs the fp8 path (--attention fp8); the bf16 path stays the fallback.
  void set_fp8(bool on);
  bool fp8() const;
  // Builds the plans a shape will use now (bf16, and fp8 as well when with_fp8: the chunks'
  // plans where kv_chunk splits Lk), so that the first call does not pay for them. False
  // when one has no plan.
  bool prepare(int64_t Lq, int64_t Lk, int64_t H, int64_t D, bool lse, bool with_fp8, int64_t kv_chunk);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace raylight::cuda
