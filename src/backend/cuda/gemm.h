// Matrix products through cuBLASLt: y[M, N] = alpha * x[M, K] w[N, K]^T (+ bias) (GELU),
// PyTorch Linear layout, bf16 output. Weights are bf16, or fp8 e4m3 codes whose per-tensor
// scale is folded into alpha (the activation then is fp8 too, with its scale read from
// device memory, so nothing synchronises). Bias and GELU run in cuBLASLt's epilogue.
// Plans (descriptors + the heuristic's algorithm) are cached per shape, types, epilogue and
// pointer alignment, so the heuristic runs once per distinct product. A large product's plan
// (M*N*K >= 2^32) times the heuristic's candidates (up to 16) on its first call's operands
// and keeps the fastest: the heuristic's first choice is not always the fastest kernel.
// RAYLIGHT_GEMM_TUNE=0 takes the heuristic's order as it is; RAYLIGHT_GEMM_DEBUG prints plans
// and each timed candidate. Plans are made on first use (the first forward), or before it by
// prepare() for the shapes a job will run (backend/linear_plans.h).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <tuple>

#include "core/dtype.h"

namespace raylight::cuda {

enum class Epilogue { None, Gelu };

class Gemm {
 public:
  explicit Gemm(cudaStream_t stream);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // Returns false (and does nothing) when cuBLASLt has no algorithm for this case, so the
  // caller can fall back (e.g. GELU as a separate kernel). `w_kn`: w is stored [K, N]
  // (N contiguous, bf16 only) instead of [N, K], e.g. an im2col scratch laid out by pixel.
  // `ldw`: elements between the weight's rows when w is a run of columns of a wider weight
  // (0: K); `accumulate`: y += the product (beta 1) instead of y = it. `x_rows` (fp8 x):
  // x_scale holds one descale per row of x (M floats; cuBLASLt's outer-vector scaling, the
  // weight's side a vector of ones) instead of one for the whole tensor.
  bool run(const void* x, DType x_type, const float* x_scale, const void* w, DType w_type,
           float alpha, const void* bias, void* y, int64_t M, int64_t N, int64_t K, Epilogue ep,
           bool w_kn = false, int64_t ldw = 0, bool accumulate = false, bool x_rows = false);

  // Device operands a plan is timed on by prepare(): buffers at least as large as the
  // product reads and writes (x [M, K], w [N, ldw] from its offset, y [M, N], bias [N]),
  // 256-byte aligned as the caching allocator's blocks are; x_scale 16-byte aligned (M floats
  // for a plan with per-row scales).
  struct Scratch {
    const void* x = nullptr;
    const float* x_scale = nullptr;
    const void* w = nullptr;
    const void* bias = nullptr;
    void* y = nullptr;
  };
  enum class Prepared { NoAlgorithm, Ready, WantsTiming };
  // Makes the plan run() will find for a call with these types and shape whose operands start
  // 256-byte aligned (the allocator's blocks; w at `w_offset` bytes into its tensor, a run of
  // its columns): the heuristic's candidates and, given `scratch`, the timing run()'s first
  // call would do (never for an accumulating product, as run()). WantsTiming: the plan
  // waits for that timing (none was given scratch). No product is computed.
  Prepared prepare(DType x_type, DType w_type, bool has_bias, int64_t M, int64_t N, int64_t K, Epilogue ep,
                   int64_t ldw, int64_t w_offset, bool accumulate, const Scratch* scratch, bool x_rows = false);
  // Plans made so far (by prepare() or by first calls): tests check that a prepared product
  // makes none.
  int64_t plans_made() const { return static_cast<int64_t>(plans_.size()); }

 private:
  struct Plan;
  using Key = std::tuple<int64_t, int64_t, int64_t, int, int, int, bool, int, int, int, int, bool, int64_t, bool>;
  Plan* plan(const Key& key);
  // Times each candidate of p on these operands (y is overwritten: never an accumulating
  // product) and moves the fastest to the front.
  void tune(Plan* p, const float* alpha, const void* w, const void* x, void* y, int64_t M, int64_t N, int64_t K);

  cudaStream_t stream_;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  float* one_ = nullptr;  // device 1.0f: the weight's scale pointer (its scale rides in alpha)
  size_t workspace_bytes_ = 64u << 20;
  bool tune_ = true;   // RAYLIGHT_GEMM_TUNE (default on)
  bool debug_ = false; // RAYLIGHT_GEMM_DEBUG
  std::map<Key, std::unique_ptr<Plan>> plans_;
};

}  // namespace raylight::cuda
