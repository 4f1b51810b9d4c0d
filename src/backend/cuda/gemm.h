// Matrix products through cuBLASLt: y[M, N] = alpha * x[M, K] w[N, K]^T (+ bias) (GELU),
// PyTorch Linear layout, bf16 output. Weights are bf16, or fp8 e4m3 codes whose per-tensor
// scale is folded into alpha (the activation then is fp8 too, with its scale read from
// device memory, so nothing synchronises). Bias and GELU run in cuBLASLt's epilogue.
// Plans (descriptors + the heuristic's algorithm) are cached per shape, types, epilogue and
// pointer alignment, so the heuristic runs once per distinct product. A large product's plan
// (M*N*K >= 2^32) times the heuristic's candidates (up to 16) on its first call's operands
// and keeps the fastest: the heuristic's first choice is not always the fastest kernel.
// RAYLIGHT_GEMM_TUNE=0 takes the heuristic's order as it is; RAYLIGHT_GEMM_DEBUG prints plans
// and each timed candidate. Plans are made on first use (the first forward), not at load.
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
  // (0: K); `accumulate`: y += the product (beta 1) instead of y = it.
  bool run(const void* x, DType x_type, const float* x_scale, const void* w, DType w_type,
           float alpha, const void* bias, void* y, int64_t M, int64_t N, int64_t K, Epilogue ep,
           bool w_kn = false, int64_t ldw = 0, bool accumulate = false);

 private:
  struct Plan;
  using Key = std::tuple<int64_t, int64_t, int64_t, int, int, int, bool, int, int, int, int, bool, int64_t>;
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
