// Products over one shared input quantisation and cuBLASLt candidate timing on the device:
// linears gives exactly the separate products (the same e4m3 codes and scale, the same plan),
// a timed plan (RAYLIGHT_GEMM_TUNE on, the default) agrees with the heuristic's kernel and
// with the CPU, and a product that accumulates into its output (linear_pair's second half)
// is never overwritten by timing. Shapes are large enough to be timed (M*N*K >= 2^32).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cuda_test_util.h"

using namespace raylight;
using namespace raylight::test;

namespace {

constexpr double kFp8 = 5e-2;

struct CudaLinears : GpuTest {};

TEST_F(CudaLinears, EqualTheSeparateProductsBitForBit) {
  const int64_t M = 2048, K = 1536;
  const Tensor x = rand_bf16({M, K});
  const Fp8Weight q = fp8_weight(rand_bf16({1536, K}, 1.0f / std::sqrt(float(K))));
  const Fp8Weight k = fp8_weight(rand_bf16({1536, K}, 1.0f / std::sqrt(float(K))));
  const Fp8Weight g = fp8_weight(rand_bf16({2048, K}, 1.0f / std::sqrt(float(K))));
  const Tensor bias = rand_bf16({1536}, 0.1f);
  const std::vector<LinearTerm> terms = {{gpu->weight(q.codes, q.scale), gpu->upload(bias)},
                                         {gpu->weight(k.codes, k.scale), Tensor()},
                                         {gpu->weight(g.codes, g.scale), Tensor(), true},
                                         {gpu->upload(rand_bf16({512, K}, 1.0f / std::sqrt(float(K)))), Tensor()}};
  const Tensor xd = up(x);
  const std::vector<Tensor> got = gpu->linears(xd, terms);
  ASSERT_EQ(got.size(), terms.size());
  for (size_t i = 0; i < terms.size(); ++i) {
    const Tensor want = terms[i].gelu_tanh ? gpu->linear_gelu_tanh(xd, terms[i].w, terms[i].b)
                                           : gpu->linear(xd, terms[i].w, terms[i].b);
    EXPECT_TRUE(same_bits(down(got[i]), down(want))) << "term " << i;
  }
  // And they are the right products.
  const Tensor ref = cpu_ref().linear(x, cpu_ref().weight(q.codes, q.scale), bias);
  EXPECT_LT(rel_err(down(got[0]), ref), kFp8);
}

TEST_F(CudaLinears, TimedPlansAgreeWithTheHeuristicsKernelAndTheCpu) {
  const int64_t M = 4096, K = 1536, N = 1536;
  const Tensor x = rand_bf16({M, K});
  const Fp8Weight w = fp8_weight(rand_bf16({N, K}, 1.0f / std::sqrt(float(K))));
  const Tensor bias = rand_bf16({N}, 0.1f);
  const Tensor ref = cpu_ref().linear_gelu_tanh(x, cpu_ref().weight(w.codes, w.scale), bias);
  Tensor outs[2];
  for (bool tune : {false, true}) {
    auto be = backend_with_tuning(tune);
    const Tensor xd = be->upload(x), wd = be->weight(w.codes, w.scale), bd = be->upload(bias);
    const Tensor first = be->download(be->linear_gelu_tanh(xd, wd, bd));  // the call that times the plan
    const Tensor again = be->download(be->linear_gelu_tanh(xd, wd, bd));
    EXPECT_TRUE(same_bits(first, again)) << "tune " << tune << ": the timed call's output is the kept kernel's";
    EXPECT_LT(rel_err(again, ref), kFp8) << "tune " << tune;
    outs[tune] = again;
  }
  // Different kernels may round differently, but only in the last bits of bf16.
  EXPECT_LT(rel_err(outs[1], outs[0]), 1e-2);
}

TEST_F(CudaLinears, AnAccumulatingProductIsNotOverwrittenByTiming) {
  // linear_pair: the second half accumulates (beta 1) into the first's output. With a bias
  // only the first half has one, so the second half has its own plan, large enough to be
  // timed, whose first call accumulates: timing it would overwrite the first half's sum.
  const int64_t M = 4096, Ka = 768, Kb = 768, N = 1536;
  const Tensor a = rand_bf16({M, Ka}), b = rand_bf16({M, Kb}), bias = rand_bf16({N}, 0.1f);
  const Fp8Weight w = fp8_weight(rand_bf16({N, Ka + Kb}, 1.0f / std::sqrt(float(Ka + Kb))));
  const Tensor ref = cpu_ref().linear_pair(a, b, cpu_ref().weight(w.codes, w.scale), bias);
  auto be = backend_with_tuning(true);
  const Tensor wd = be->weight(w.codes, w.scale), bd = be->upload(bias);
  for (int pass = 0; pass < 2; ++pass)
    EXPECT_LT(rel_err(be->download(be->linear_pair(be->upload(a), be->upload(b), wd, bd)), ref), kFp8)
        << "pass " << pass;
}

}  // namespace
