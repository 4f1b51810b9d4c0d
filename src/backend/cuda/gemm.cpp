#include "backend/cuda/gemm.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_constants.h"
#include "backend/cuda/kernels.h"

namespace raylight::cuda {
namespace {

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::BF16: return CUDA_R_16BF;
    case DType::F8E4M3: return CUDA_R_8F_E4M3;
    case DType::F16: return CUDA_R_16F;
    case DType::F32: return CUDA_R_32F;
    default: fail("gemm: unsupported dtype ", dtype_name(t));
  }
}

// Products at least this large (M*N*K) time their candidates: a few milliseconds once per
// plan against a kernel that runs every step.
constexpr double kTuneWork = 4294967296.0;  // 2^32
constexpr int kTuneCandidates = 16, kHeuristicCandidates = 8;
constexpr int kTuneRuns = 2;  // timed runs per candidate, after one untimed
constexpr float kTuneMargin = 0.97f;  // another candidate must take under 97 % of the heuristic's time

bool env_off(const char* name) {
  const char* v = std::getenv(name);
  return v && std::string(v) == "0";
}

// The largest power of two up to 256 dividing an address (or an offset from a 256-byte
// aligned block).
int alignment(uintptr_t a) {
  int al = 256;
  while (al > 1 && a % al) al /= 2;
  return al;
}
int alignment(const void* p) { return alignment(reinterpret_cast<uintptr_t>(p)); }

}  // namespace

struct Gemm::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  std::vector<cublasLtMatmulAlgo_t> algos;  // heuristic's candidates, best first
  size_t next = 0;                           // first candidate not yet refused at run time
  bool tune = false;                         // candidates still to be timed on a first call
  float* ones = nullptr;                     // per-row scales: the weight's side, N ones
  ~Plan() {
    if (ones) cudaFree(ones);
    if (desc) cublasLtMatmulDescDestroy(desc);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (d) cublasLtMatrixLayoutDestroy(d);
  }
};

Gemm::Gemm(cudaStream_t stream)
    : stream_(stream), tune_(!env_off("RAYLIGHT_GEMM_TUNE")), debug_(std::getenv("RAYLIGHT_GEMM_DEBUG") != nullptr) {
  RL_CUBLAS(cublasLtCreate(&handle_));
  RL_CUDA(cudaMalloc(&workspace_, workspace_bytes_));
  RL_CUDA(cudaMalloc(&one_, sizeof(float)));
  // On the compute stream, not the legacy default one (device_constants.h says why).
  const float one = 1.0f;
  write_device_constants(one_, &one, 1, stream_);
}

Gemm::~Gemm() {
  plans_.clear();
  if (workspace_) cudaFree(workspace_);
  if (one_) cudaFree(one_);
  if (handle_) cublasLtDestroy(handle_);
}

// Column-major view: D (N x M, ld N) = op(A) B with A = w stored K x N (ld K) transposed,
// B = x stored K x M (ld K): exactly row-major y[M, N] = x w^T. This "TN" form is also the
// one Hopper's fp8 kernels require. With w_kn, A = w stored N x K (ld N), not transposed.
Gemm::Plan* Gemm::plan(const Key& key) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second.get();
  const auto [M, N, K, xt, wt, ep, has_bias, al_x, al_w, al_y, al_b, w_kn, ldw, x_rows] = key;
  auto p = std::make_unique<Plan>();
  const DType x_type = static_cast<DType>(xt), w_type = static_cast<DType>(wt);
  RL_CUBLAS(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = w_kn ? CUBLAS_OP_N : CUBLAS_OP_T, tb = CUBLAS_OP_N;
  RL_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  RL_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  cublasLtEpilogue_t e = CUBLASLT_EPILOGUE_DEFAULT;
  if (ep == static_cast<int>(Epilogue::Gelu)) e = has_bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
  else if (has_bias) e = CUBLASLT_EPILOGUE_BIAS;
  RL_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof(e)));
  if (has_bias) {
    const cudaDataType_t bt = CUDA_R_16BF;
    RL_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)));
  }
  if (x_type == DType::F8E4M3) {
    // Scale pointers are part of the problem the heuristic sees; B's is replaced per call.
    const int8_t fast = 1;
    RL_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof(fast)));
    const float* one = one_;
    const float* a_scale = one_;
    if (x_rows) {
      // Outer-vector scaling takes vectors on both sides (cuBLASLt 13.1 on an H200 refuses a
      // vector with a scalar): the weight's are ones, its scale stays in alpha.
      const int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
      RL_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof(mode)));
      RL_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof(mode)));
      RL_CUDA(cudaMalloc(&p->ones, size_t(N) * sizeof(float)));
      fill_f32(p->ones, N, 1.0f, stream_);
      a_scale = p->ones;
    }
    RL_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &a_scale, sizeof(a_scale)));
    RL_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &one, sizeof(one)));
  }
  if (w_kn) RL_CUBLAS(cublasLtMatrixLayoutCreate(&p->a, cuda_type(w_type), N, K, N));
  else RL_CUBLAS(cublasLtMatrixLayoutCreate(&p->a, cuda_type(w_type), K, N, ldw));
  RL_CUBLAS(cublasLtMatrixLayoutCreate(&p->b, cuda_type(x_type), K, M, K));
  RL_CUBLAS(cublasLtMatrixLayoutCreate(&p->d, CUDA_R_16BF, N, M, N));

  cublasLtMatmulPreference_t pref;
  RL_CUBLAS(cublasLtMatmulPreferenceCreate(&pref));
  RL_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                 &workspace_bytes_, sizeof(workspace_bytes_)));
  const uint32_t aa = al_w, ab = al_x, ad = al_y, abias = al_b;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof(aa));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof(ab));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ad, sizeof(ad));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ad, sizeof(ad));
  (void)abias;
  const bool large = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K) >= kTuneWork;
  const int wanted = tune_ && large ? kTuneCandidates : kHeuristicCandidates;
  cublasLtMatmulHeuristicResult_t results[kTuneCandidates] = {};
  int found = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle_, p->desc, p->a, p->b, p->d, p->d,
                                                           pref, wanted, results, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st == CUBLAS_STATUS_SUCCESS)
    for (int i = 0; i < found; ++i)
      if (results[i].state == CUBLAS_STATUS_SUCCESS) p->algos.push_back(results[i].algo);
  p->tune = tune_ && large && p->algos.size() > 1;
  if (debug_)
    std::fprintf(stderr, "gemm plan M%lld N%lld K%lld x%s%s w%s ep%d bias%d: heuristic status %d, %zu algos%s\n",
                 (long long)M, (long long)N, (long long)K, dtype_name(x_type).c_str(), x_rows ? " (row scales)" : "",
                 dtype_name(w_type).c_str(), ep, int(has_bias), int(st), p->algos.size(),
                 p->tune ? ", to be timed" : "");
  Plan* raw = p.get();
  plans_.emplace(key, std::move(p));
  return raw;
}

bool Gemm::run(const void* x, DType x_type, const float* x_scale, const void* w, DType w_type,
               float alpha, const void* bias, void* y, int64_t M, int64_t N, int64_t K, Epilogue ep,
               bool w_kn, int64_t ldw, bool accumulate, bool x_rows) {
  if (M == 0 || N == 0) return true;
  x_rows = x_rows && x_type == DType::F8E4M3;
  if (ldw == 0) ldw = K;
  if (w_kn && ldw != K) return false;
  if (w_kn && w_type != DType::BF16) return false;  // fp8 kernels need the "TN" form
  // cuBLASLt refuses fp8 products (NOT_SUPPORTED from every algorithm) whose scale pointers
  // are not 16-byte aligned; the caller then dequantises instead.
  if (x_type == DType::F8E4M3 && reinterpret_cast<uintptr_t>(x_scale) % 16 != 0) return false;
  Plan* p = plan(Key{M, N, K, static_cast<int>(x_type), static_cast<int>(w_type), static_cast<int>(ep), bias != nullptr,
                     alignment(x), alignment(w), alignment(y), bias ? alignment(bias) : 256, w_kn, ldw, x_rows});
  if (bias)
    RL_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  if (x_type == DType::F8E4M3)
    RL_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &x_scale,
                                             sizeof(x_scale)));
  const float beta = accumulate ? 1.f : 0.f;
  // Timing writes y, so the plan waits for a call that overwrites y (not y += ...).
  if (p->tune && !accumulate) {
    p->tune = false;
    tune(p, &alpha, w, x, y, M, N, K);
  }
  // A candidate refused at run time (NOT_SUPPORTED) is skipped from then on.
  for (; p->next < p->algos.size(); ++p->next) {
    const cublasStatus_t st = cublasLtMatmul(handle_, p->desc, &alpha, w, p->a, x, p->b, &beta, y, p->d,
                                             y, p->d, &p->algos[p->next], workspace_, workspace_bytes_, stream_);
    if (st == CUBLAS_STATUS_SUCCESS) return true;
    if (debug_)
      std::fprintf(stderr, "gemm M%lld N%lld K%lld: algo %zu refused with status %d\n", (long long)M,
                   (long long)N, (long long)K, p->next, int(st));
    if (st != CUBLAS_STATUS_NOT_SUPPORTED && st != CUBLAS_STATUS_INVALID_VALUE) RL_CUBLAS(st);
  }
  return false;
}

// The key run() computes for operands at the allocator's alignment (256) with w `w_offset`
// bytes in: a plan made here is the one that call finds.
Gemm::Prepared Gemm::prepare(DType x_type, DType w_type, bool has_bias, int64_t M, int64_t N, int64_t K, Epilogue ep,
                             int64_t ldw, int64_t w_offset, bool accumulate, const Scratch* scratch, bool x_rows) {
  if (M == 0 || N == 0) return Prepared::Ready;  // run() makes no plan for an empty product
  x_rows = x_rows && x_type == DType::F8E4M3;
  if (ldw == 0) ldw = K;
  const int al_w = alignment(static_cast<uintptr_t>(w_offset));
  Plan* p = plan(Key{M, N, K, static_cast<int>(x_type), static_cast<int>(w_type), static_cast<int>(ep), has_bias, 256,
                     al_w, 256, 256, false, ldw, x_rows});
  if (p->algos.empty()) return Prepared::NoAlgorithm;
  if (!p->tune || accumulate) return Prepared::Ready;
  if (!scratch) return Prepared::WantsTiming;
  const auto* w = static_cast<const char*>(scratch->w) + w_offset;
  if (alignment(scratch->x) != 256 || alignment(scratch->w) != 256 || alignment(scratch->y) != 256 ||
      (has_bias && alignment(scratch->bias) != 256))
    fail("gemm prepare: scratch operands must be 256-byte aligned");
  if (has_bias)
    RL_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &scratch->bias,
                                             sizeof(scratch->bias)));
  if (x_type == DType::F8E4M3)
    RL_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &scratch->x_scale,
                                             sizeof(scratch->x_scale)));
  p->tune = false;
  const float alpha = 1.0f;
  tune(p, &alpha, w, scratch->x, scratch->y, M, N, K);
  return Prepared::Ready;
}

// Each candidate: one untimed run (a refused one is dropped), then kTuneRuns runs between two
// events on the stream. A stream being captured into a graph cannot be timed: order kept.
void Gemm::tune(Plan* p, const float* alpha, const void* w, const void* x, void* y, int64_t M, int64_t N,
                int64_t K) {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  RL_CUDA(cudaStreamIsCapturing(stream_, &capture));
  if (capture != cudaStreamCaptureStatusNone) return;
  cudaEvent_t start, stop;
  RL_CUDA(cudaEventCreate(&start));
  RL_CUDA(cudaEventCreate(&stop));
  const float beta = 0.f;
  struct Timed {
    float ms;
    size_t index;  // in the heuristic's order
    cublasLtMatmulAlgo_t algo;
  };
  std::vector<Timed> timed;
  float heuristic_first = -1;  // the heuristic's own choice (candidate 0) when it ran
  auto matmul = [&](const cublasLtMatmulAlgo_t& algo) {
    return cublasLtMatmul(handle_, p->desc, alpha, w, p->a, x, p->b, &beta, y, p->d, y, p->d, &algo, workspace_,
                          workspace_bytes_, stream_);
  };
  try {
    for (size_t i = 0; i < p->algos.size(); ++i) {
      const cublasStatus_t st = matmul(p->algos[i]);
      if (st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_INVALID_VALUE) continue;
      RL_CUBLAS(st);
      RL_CUDA(cudaEventRecord(start, stream_));
      for (int r = 0; r < kTuneRuns; ++r) RL_CUBLAS(matmul(p->algos[i]));
      RL_CUDA(cudaEventRecord(stop, stream_));
      RL_CUDA(cudaEventSynchronize(stop));
      float ms = 0;
      RL_CUDA(cudaEventElapsedTime(&ms, start, stop));
      timed.push_back({ms / kTuneRuns, i, p->algos[i]});
      if (i == 0) heuristic_first = ms / kTuneRuns;
      if (debug_)
        std::fprintf(stderr, "gemm tune M%lld N%lld K%lld: candidate %zu %.3f ms\n", (long long)M, (long long)N,
                     (long long)K, i, ms / kTuneRuns);
    }
  } catch (...) {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    throw;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if (timed.empty()) return;  // every candidate refused: run() reports it as before
  // Fastest first; the heuristic's order breaks ties (stable sort over its order). Its own
  // first choice stays unless another is clearly faster: timing noise alone should not
  // switch kernels (and so the last bits of results) from one process to the next.
  if (heuristic_first > 0)
    for (auto& t : timed)
      if (t.ms > kTuneMargin * heuristic_first) t.ms = std::max(t.ms, heuristic_first);
  std::stable_sort(timed.begin(), timed.end(), [](const Timed& a, const Timed& b) { return a.ms < b.ms; });
  if (debug_) {
    const double tflops = 2.0 * M * N * K / (timed.front().ms * 1e-3) / 1e12;
    std::fprintf(stderr,
                 "gemm tune M%lld N%lld K%lld: kept candidate %zu, %.3f ms (%.0f TFLOP/s) of %zu timed; heuristic's "
                 "first %.3f ms\n",
                 (long long)M, (long long)N, (long long)K, timed.front().index, timed.front().ms, tflops, timed.size(),
                 heuristic_first);
  }
  p->algos.clear();
  for (const Timed& t : timed) p->algos.push_back(t.algo);
  p->next = 0;
}

}  // namespace raylight::cuda
