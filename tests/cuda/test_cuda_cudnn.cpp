// cuDNN fused attention (backend graph API) against the CPU reference, called directly, so
// a shape cuDNN has no plan for fails here instead of silently falling back (through the
// backend, both attention kernels are in the op suite, tests/backend). Odd lengths, Lq != Lk (cross-attention to 512 text
// tokens), key masks down to one valid key, head_dim 64 and 128, and the lse (natural log
// of the scaled scores' sum of exponentials). Outputs are poisoned (NaN) before each run.
// Also a probe of cuBLASLt's fp8 products (which variants it accepts), printed, not judged.
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cudnn_attention.h"
#include "core/error.h"
#include "cuda_test_util.h"

using namespace raylight;
using namespace raylight::test;

namespace {

struct Case {
  int64_t Lq, Lk, H, D, valid;
};

const Case kCases[] = {{1, 1, 1, 64, -1},     {37, 53, 3, 64, 40},    {200, 512, 2, 128, -1},
                       {129, 300, 4, 128, 257}, {500, 500, 2, 128, -1}, {64, 64, 1, 128, 1},
                       {300, 77, 2, 64, 70},    {333, 512, 3, 128, 7},  {256, 256, 2, 128, -1},
                       {1000, 1000, 2, 128, 999}, {77, 512, 5, 128, 512}};

std::string name(const Case& c) {
  return std::to_string(c.Lq) + "x" + std::to_string(c.Lk) + " h" + std::to_string(c.H) + " d" +
         std::to_string(c.D) + " valid " + std::to_string(c.valid);
}

using CudnnAttentionTest = GpuTest;

TEST_F(CudnnAttentionTest, DirectAgainstCpuReference) {
  auto stream = static_cast<cudaStream_t>(gpu->native_stream());
  cuda::CudnnAttention attn(stream);
  ASSERT_TRUE(attn.available()) << attn.describe();
  std::printf("[ cudnn    ] %s\n", attn.describe().c_str());
  for (const Case& c : kCases) {
    for (bool with_lse : {true, false}) {
      Tensor q = rand_bf16({c.Lq, c.H, c.D}), k = rand_bf16({c.Lk, c.H, c.D}), v = rand_bf16({c.Lk, c.H, c.D});
      Tensor lse_ref;
      Tensor ref = cpu_ref().attention(q, k, v, c.valid, &lse_ref);
      Tensor gq = gpu->upload(q), gk = gpu->upload(k), gv = gpu->upload(v), go = gpu->empty({c.Lq, c.H, c.D});
      float* lse = nullptr;
      const size_t lse_bytes = size_t(c.H * c.Lq) * sizeof(float);
      if (with_lse) {
        ASSERT_EQ(cudaMalloc(&lse, lse_bytes), cudaSuccess);
        ASSERT_EQ(cudaMemsetAsync(lse, 0xFF, lse_bytes, stream), cudaSuccess);
      }
      auto bp = [](const Tensor& t) { return static_cast<cuda::bf16*>(const_cast<void*>(t.raw())); };
      if (!attn.run(bp(gq), bp(gk), bp(gv), bp(go), lse, c.Lq, c.Lk, c.H, c.D, c.valid)) {
        ADD_FAILURE() << "cuDNN built no plan for " << name(c);
        if (lse) cudaFree(lse);
        continue;
      }
      EXPECT_LT(rel_err(gpu->download(go), ref), 1e-2) << name(c) << (with_lse ? " lse" : "");
      if (with_lse) {
        Tensor got = Tensor::empty({c.H, c.Lq});
        ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
        ASSERT_EQ(cudaMemcpy(got.raw(), lse, lse_bytes, cudaMemcpyDeviceToHost), cudaSuccess);
        EXPECT_LT(max_abs(got, lse_ref), 2e-2) << name(c) << " lse";
        cudaFree(lse);
      }
    }
  }
}

// Changing k_valid between calls reuses one plan (the count travels in device memory).
TEST_F(CudnnAttentionTest, ValidKeysChangeWithoutReplanning) {
  const int64_t Lq = 96, Lk = 512, H = 2, D = 128;
  Tensor q = rand_bf16({Lq, H, D}), k = rand_bf16({Lk, H, D}), v = rand_bf16({Lk, H, D});
  Tensor gq = gpu->upload(q), gk = gpu->upload(k), gv = gpu->upload(v);
  gpu->set_attention_kernel(AttentionKernel::Cudnn);
  for (int64_t valid : {512, 13, 300, 1, 511}) {
    Tensor lse_ref, lse;
    Tensor ref = cpu_ref().attention(q, k, v, valid, &lse_ref);
    EXPECT_LT(rel_err(gpu->download(gpu->attention(gq, gk, gv, valid, &lse)), ref), 1e-2) << valid;
    EXPECT_LT(max_abs(gpu->download(lse), lse_ref), 2e-2) << valid;
  }
}

// cuBLASLt fp8: which of several descriptor variants run (M = N = K = 256, fresh aligned
// buffers). Printed for the benchmark notes; a variant that runs is checked for NaN only.
TEST(CudaProbe, Fp8GemmVariants) {
  if (!cuda_device_available()) GTEST_FAIL() << "no CUDA device: the gpu-labelled tests run on a GPU machine";
  const int64_t M = 256, N = 512, K = 256;
  cublasLtHandle_t lt;
  ASSERT_EQ(cublasLtCreate(&lt), CUBLAS_STATUS_SUCCESS);
  void *a, *b, *d, *bias, *ws;
  float* scales;
  const size_t ws_bytes = 64u << 20;
  ASSERT_EQ(cudaMalloc(&a, N * K), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&b, M * K), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d, M * N * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&bias, N * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&ws, ws_bytes), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&scales, 256), cudaSuccess);
  std::vector<uint8_t> codes(size_t(N * K));
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = f32_to_e4m3(float(int(i % 7) - 3) / 4.0f);
  cudaMemcpy(a, codes.data(), N * K, cudaMemcpyHostToDevice);
  cudaMemcpy(b, codes.data(), M * K, cudaMemcpyHostToDevice);
  cudaMemset(bias, 0, N * 4);
  const float ones[64] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                          1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  cudaMemcpy(scales, ones, 256, cudaMemcpyHostToDevice);
  struct Variant {
    const char* name;
    bool bias, fast, scale_ptrs, odd_scale, d_f32, c_f32;
  };
  const Variant variants[] = {
      {"as gemm.cpp: bias bf16, fast accum, A/B scale ptrs", true, true, true, true, false, false},
      {"no bias epilogue", false, true, true, true, false, false},
      {"no bias, no fast accum", false, false, true, true, false, false},
      {"no bias, no scale pointers", false, true, false, false, false, false},
      {"bias, scale pointers 16-byte aligned", true, true, true, false, false, false},
      {"no bias, D fp32 (C fp32)", false, true, true, false, true, true},
  };
  for (const Variant& var : variants) {
    cublasLtMatmulDesc_t desc;
    cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (var.bias) {
      const cublasLtEpilogue_t e = CUBLASLT_EPILOGUE_BIAS;
      const cudaDataType_t bt = CUDA_R_16BF;
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e);
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt);
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    }
    if (var.fast) {
      const int8_t one = 1;
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &one, sizeof one);
    }
    if (var.scale_ptrs) {
      const float* sa = scales;
      const float* sb = var.odd_scale ? scales + 1 : scales + 4;
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sa, sizeof sa);
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sb, sizeof sb);
    }
    cublasLtMatrixLayout_t la, lb, lc, ld;
    cublasLtMatrixLayoutCreate(&la, CUDA_R_8F_E4M3, K, N, K);
    cublasLtMatrixLayoutCreate(&lb, CUDA_R_8F_E4M3, K, M, K);
    cublasLtMatrixLayoutCreate(&lc, var.c_f32 ? CUDA_R_32F : CUDA_R_16BF, N, M, N);
    cublasLtMatrixLayoutCreate(&ld, var.d_f32 ? CUDA_R_32F : CUDA_R_16BF, N, M, N);
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof ws_bytes);
    cublasLtMatmulHeuristicResult_t res[8] = {};
    int found = 0;
    const cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, ld, pref, 8, res, &found);
    std::string outcome;
    int ran = -1;
    const float alpha = 1.0f, beta = 0.0f;
    for (int i = 0; i < found && ran < 0; ++i) {
      const cublasStatus_t st = cublasLtMatmul(lt, desc, &alpha, a, la, b, lb, &beta, d, lc, d, ld, &res[i].algo, ws,
                                               ws_bytes, nullptr);
      outcome += " " + std::to_string(int(st));
      if (st == CUBLAS_STATUS_SUCCESS) ran = i;
    }
    const cudaError_t sync = cudaDeviceSynchronize();
    std::printf("[ fp8 probe] %-52s heuristic %d (%d algos), run statuses:%s -> %s (%s)\n", var.name, int(hs), found,
                outcome.c_str(), ran >= 0 ? "RUNS" : "refused", cudaGetErrorString(sync));
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatrixLayoutDestroy(ld);
    cublasLtMatmulDescDestroy(desc);
  }
  cudaFree(a);
  cudaFree(b);
  cudaFree(d);
  cudaFree(bias);
  cudaFree(ws);
  cudaFree(scales);
  cublasLtDestroy(lt);
}

}  // namespace
