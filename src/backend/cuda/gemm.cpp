#include "backend/cuda/gemm.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "backend/cuda/cuda_check.h"

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

int alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  int al = 256;
  while (al > 1 && a % al) al /= 2;
  return al;
}

}  // namespace

struct Gemm::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  std::vector<cublasLtMatmulAlgo_t> algos;  // heuristic's candidates, best first
  size_t next = 0;                           // first candidate not yet refused at run time
  ~Plan() {
    if (desc) cublasLtMatmulDescDestroy(desc);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (d) cublasLtMatrixLayoutDestroy(d);
  }
};

Gemm::Gemm(cudaStream_t stream) : stream_(stream) {
  RL_CUBLAS(cublasLtCreate(&handle_));
  RL_CUDA(cudaMalloc(&workspace_, workspace_bytes_));
  RL_CUDA(cudaMalloc(&one_, sizeof(float)));
  const float one = 1.0f;
  RL_CUDA(cudaMemcpy(one_, &one, sizeof(float), cudaMemcpyHostToDevice));
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
  const auto [M, N, K, xt, wt, ep, has_bias, al_x, al_w, al_y, al_b, w_kn, ldw] = key;
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
    RL_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &one, sizeof(one)));
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
  cublasLtMatmulHeuristicResult_t results[8] = {};
  int found = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle_, p->desc, p->a, p->b, p->d, p->d,
                                                           pref, 8, results, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st == CUBLAS_STATUS_SUCCESS)
    for (int i = 0; i < found; ++i)
      if (results[i].state == CUBLAS_STATUS_SUCCESS) p->algos.push_back(results[i].algo);
  if (std::getenv("RAYLIGHT_GEMM_DEBUG"))
    std::fprintf(stderr, "gemm plan M%lld N%lld K%lld x%s w%s ep%d bias%d: heuristic status %d, %zu algos\n",
                 (long long)M, (long long)N, (long long)K, dtype_name(x_type).c_str(), dtype_name(w_type).c_str(),
                 ep, int(has_bias), int(st), p->algos.size());
  Plan* raw = p.get();
  plans_.emplace(key, std::move(p));
  return raw;
}

bool Gemm::run(const void* x, DType x_type, const float* x_scale, const void* w, DType w_type,
               float alpha, const void* bias, void* y, int64_t M, int64_t N, int64_t K, Epilogue ep,
               bool w_kn, int64_t ldw, bool accumulate) {
  if (M == 0 || N == 0) return true;
  if (ldw == 0) ldw = K;
  if (w_kn && ldw != K) return false;
  if (w_kn && w_type != DType::BF16) return false;  // fp8 kernels need the "TN" form
  // cuBLASLt refuses fp8 products (NOT_SUPPORTED from every algorithm) whose scale pointers
  // are not 16-byte aligned; the caller then dequantises instead.
  if (x_type == DType::F8E4M3 && reinterpret_cast<uintptr_t>(x_scale) % 16 != 0) return false;
  const Key key{M, N, K, static_cast<int>(x_type), static_cast<int>(w_type), static_cast<int>(ep),
                bias != nullptr, alignment(x), alignment(w), alignment(y), bias ? alignment(bias) : 256, w_kn, ldw};
  Plan* p = plan(key);
  if (bias)
    RL_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  if (x_type == DType::F8E4M3)
    RL_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &x_scale,
                                             sizeof(x_scale)));
  const float beta = accumulate ? 1.f : 0.f;
  // A candidate refused at run time (NOT_SUPPORTED) is skipped from then on.
  for (; p->next < p->algos.size(); ++p->next) {
    const cublasStatus_t st = cublasLtMatmul(handle_, p->desc, &alpha, w, p->a, x, p->b, &beta, y, p->d,
                                             y, p->d, &p->algos[p->next], workspace_, workspace_bytes_, stream_);
    if (st == CUBLAS_STATUS_SUCCESS) return true;
    if (std::getenv("RAYLIGHT_GEMM_DEBUG"))
      std::fprintf(stderr, "gemm M%lld N%lld K%lld: algo %zu refused with status %d\n", (long long)M,
                   (long long)N, (long long)K, p->next, int(st));
    if (st != CUBLAS_STATUS_NOT_SUPPORTED && st != CUBLAS_STATUS_INVALID_VALUE) RL_CUBLAS(st);
  }
  return false;
}

}  // namespace raylight::cuda
