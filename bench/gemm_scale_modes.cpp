// Which fp8 scale modes cuBLASLt runs at Wan 14B's product shapes on this GPU, and how fast:
// one scale per tensor (what gemm.cpp does by default), one per row of the activation with one
// per output column of the weight (outer vectors: CudaOptions::fp8_row_scales), and the 1 x 128
// block forms. Each with the bias (GELU) epilogue and fast accumulation as gemm.cpp asks, or
// without fast accumulation (RAYLIGHT_PROBE_EXACT=1). Asserts nothing: docs/benchmarks.md,
// thirteenth session, has what an H200 said.
//   raylight_gemm_scale_modes
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

struct Shape {
  const char* name;
  int64_t M, N, K;
  bool gelu;
};
struct Mode {
  const char* name;
  cublasLtMatmulMatrixScale_t w, x;
};

// The fastest candidate's mean over 10 runs (after 3 untimed); -1 where every one refused.
float best_ms(cublasLtHandle_t lt, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t la, cublasLtMatrixLayout_t lb,
              cublasLtMatrixLayout_t ld, const void* w, const void* x, void* y, void* ws, size_t ws_bytes,
              const std::vector<cublasLtMatmulHeuristicResult_t>& algos, cudaStream_t s) {
  const float alpha = 1.0f, beta = 0.0f;
  float best = -1;
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  for (const auto& a : algos) {
    auto mm = [&] { return cublasLtMatmul(lt, desc, &alpha, w, la, x, lb, &beta, y, ld, y, ld, &a.algo, ws, ws_bytes, s); };
    if (mm() != CUBLAS_STATUS_SUCCESS) continue;
    for (int r = 0; r < 3; ++r) mm();
    cudaEventRecord(e0, s);
    for (int r = 0; r < 10; ++r) mm();
    cudaEventRecord(e1, s);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    if (best < 0 || ms / 10 < best) best = ms / 10;
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return best;
}

}  // namespace

int main() {
  const bool exact = std::getenv("RAYLIGHT_PROBE_EXACT") != nullptr;
  std::printf("cuBLASLt %zu, %s accumulation\n", cublasLtGetVersion(), exact ? "exact" : "fast");
  cublasLtHandle_t lt;
  if (cublasLtCreate(&lt) != CUBLAS_STATUS_SUCCESS) return 1;
  cudaStream_t s;
  cudaStreamCreate(&s);
  const size_t ws_bytes = size_t(64) << 20;
  const Shape shapes[] = {{"o-projection 32760 x 5120 x 5120", 32760, 5120, 5120, false},
                          {"FFN in, GELU 32760 x 13824 x 5120", 32760, 13824, 5120, true},
                          {"FFN out 32760 x 5120 x 13824", 32760, 5120, 13824, false}};
  const Mode modes[] = {{"per tensor", CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F, CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F},
                        {"outer vectors", CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F,
                         CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F},
                        {"per-tensor w, per-row x", CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F,
                         CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F},
                        {"128x128 w, 1x128 x", CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F,
                         CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F},
                        {"1x128 w, 1x128 x", CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F,
                         CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F}};
  void *ws = nullptr, *w = nullptr, *x = nullptr, *y = nullptr, *bias = nullptr;
  float* ones = nullptr;
  const int64_t most = 32760 * 13824, scales = 32760 * (13824 / 128 + 1);
  if (cudaMalloc(&ws, ws_bytes) || cudaMalloc(&w, most) || cudaMalloc(&x, most) || cudaMalloc(&y, most * 2) ||
      cudaMalloc(&bias, 13824 * 2) || cudaMalloc(&ones, scales * sizeof(float)))
    return 1;
  // Codes of values spread like a forward's (random signs and sizes within e4m3's range: with
  // constant codes the tensor cores draw less and the timings differ), scales of one.
  std::vector<uint8_t> pattern(size_t(1) << 20);
  uint32_t state = 12345;
  for (uint8_t& c : pattern) {
    state = state * 1664525u + 1013904223u;
    c = uint8_t((state >> 24) & 0xbf);  // any sign and mantissa, exponent field up to 7: values under 2, no NaN
  }
  for (int64_t at = 0; at < most; at += int64_t(pattern.size())) {
    const size_t n = size_t(std::min<int64_t>(int64_t(pattern.size()), most - at));
    cudaMemcpy(static_cast<uint8_t*>(w) + at, pattern.data(), n, cudaMemcpyHostToDevice);
    cudaMemcpy(static_cast<uint8_t*>(x) + at, pattern.data(), n, cudaMemcpyHostToDevice);
  }
  cudaMemset(bias, 0, 13824 * 2);
  const std::vector<float> host_ones(scales, 1.0f);
  cudaMemcpy(ones, host_ones.data(), scales * sizeof(float), cudaMemcpyHostToDevice);
  for (const Shape& sh : shapes) {
    for (const Mode& m : modes) {
      cublasLtMatmulDesc_t desc;
      cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
      const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
      const cublasLtEpilogue_t e = sh.gelu ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
      const cudaDataType_t bt = CUDA_R_16BF;
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e);
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt);
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
      const int8_t fast = exact ? 0 : 1;
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast);
      const int32_t mw = m.w, mx = m.x;
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mw, sizeof mw);
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mx, sizeof mx);
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &ones, sizeof ones);
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &ones, sizeof ones);
      cublasLtMatrixLayout_t la, lb, ld;
      cublasLtMatrixLayoutCreate(&la, CUDA_R_8F_E4M3, sh.K, sh.N, sh.K);
      cublasLtMatrixLayoutCreate(&lb, CUDA_R_8F_E4M3, sh.K, sh.M, sh.K);
      cublasLtMatrixLayoutCreate(&ld, CUDA_R_16BF, sh.N, sh.M, sh.N);
      cublasLtMatmulPreference_t pref;
      cublasLtMatmulPreferenceCreate(&pref);
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof ws_bytes);
      std::vector<cublasLtMatmulHeuristicResult_t> algos(16);
      int found = 0;
      const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, ld, ld, pref, 16, algos.data(), &found);
      algos.resize(st == CUBLAS_STATUS_SUCCESS ? found : 0);
      const float ms = algos.empty() ? -1 : best_ms(lt, desc, la, lb, ld, w, x, y, ws, ws_bytes, algos, s);
      if (ms > 0)
        std::printf("%-34s %-24s %2zu candidates, best %.3f ms, %.0f TFLOP/s\n", sh.name, m.name, algos.size(), ms,
                    2.0 * sh.M * sh.N * sh.K / ms / 1e9);
      else
        std::printf("%-34s %-24s refused (heuristic status %d, %d candidates)\n", sh.name, m.name, int(st), found);
      cublasLtMatmulPreferenceDestroy(pref);
      cublasLtMatrixLayoutDestroy(la);
      cublasLtMatrixLayoutDestroy(lb);
      cublasLtMatrixLayoutDestroy(ld);
      cublasLtMatmulDescDestroy(desc);
    }
  }
  cudaFree(ws);
  cudaFree(w);
  cudaFree(x);
  cudaFree(y);
  cudaFree(bias);
  cudaFree(ones);
  cublasLtDestroy(lt);
  return 0;
}
