// Product plans made before the first call (backend/linear_plans.h): a prepared product's
// first call finds its plan (no new one is made), and gives what an unprepared first call
// gives: bit for bit with the heuristic's order (RAYLIGHT_GEMM_TUNE=0), and within bf16
// rounding with timing on (timing on scratch may keep another kernel than timing on the
// call's operands). A whole Wan forward (fp8 and bf16 weights, products large enough to be
// timed) makes no plan after prepare_product_plans.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cuda_test_util.h"
#include "models/flux/flux_config.h"
#include "models/wan/wan_config.h"
#include "pipeline/model_loader.h"
#include "pipeline/job_plans.h"
#include "../part_loaders.h"

using namespace raylight;
using namespace raylight::test;

namespace {

constexpr double kFp8 = 5e-2;

// Operands of every kind of product: an fp8 GELU product with a bias, large enough to be
// timed (M*N*K >= 2^32); a bf16 one; three fp8 products over one x (linears); and a pair
// whose second half accumulates over a run of the weight's columns (linear_pair).
struct Products {
  static constexpr int64_t M = 4096, K = 1536, N = 1536, Kb = 768;
  Tensor x, b2, bias;
  Fp8Weight w8, q, k, v, pair;
  Tensor w16;
  Products() {
    const float s = 1.0f / std::sqrt(float(K));
    x = rand_bf16({M, K});
    b2 = rand_bf16({M, Kb});
    bias = rand_bf16({N}, 0.1f);
    w8 = fp8_weight(rand_bf16({N, K}, s));
    q = fp8_weight(rand_bf16({N, K}, s));
    k = fp8_weight(rand_bf16({N, K}, s));
    v = fp8_weight(rand_bf16({N, K}, s));
    pair = fp8_weight(rand_bf16({N, K + Kb}, 1.0f / std::sqrt(float(K + Kb))));
    w16 = rand_bf16({2 * N, K}, s);
  }
  // What prepare_linears is told about them.
  std::vector<LinearShape> shapes() const {
    auto shape = [](int64_t rows, int64_t out, int64_t width, DType dt, bool bias, bool gelu) {
      LinearShape s;
      s.rows = rows, s.out = out, s.width = width, s.weight_dtype = dt, s.bias = bias, s.gelu = gelu;
      return s;
    };
    std::vector<LinearShape> out = {shape(M, N, K, DType::F8E4M3, true, true), shape(M, 2 * N, K, DType::BF16, false, false),
                                    shape(M, N, K, DType::F8E4M3, true, false), shape(M, N, K, DType::F8E4M3, false, false)};
    LinearShape first = shape(M, N, K + Kb, DType::F8E4M3, true, false);
    first.columns = K;
    LinearShape second = shape(M, N, K + Kb, DType::F8E4M3, false, false);
    second.first_column = K;
    second.accumulate = true;
    out.push_back(first);
    out.push_back(second);
    return out;
  }
  // Every product once, downloaded.
  std::vector<Tensor> run(Backend& be) const {
    const Tensor xd = be.upload(x), bd = be.upload(bias);
    std::vector<Tensor> out;
    out.push_back(be.linear_gelu_tanh(xd, be.weight(w8.codes, w8.scale), bd));
    out.push_back(be.linear(xd, be.upload(w16), Tensor()));
    for (const Tensor& t : be.linears(xd, {{be.weight(q.codes, q.scale), bd},
                                           {be.weight(k.codes, k.scale), Tensor()},
                                           {be.weight(v.codes, v.scale), Tensor()}}))
      out.push_back(t);
    out.push_back(be.linear_pair(xd, be.upload(b2), be.weight(pair.codes, pair.scale), bd));
    for (Tensor& t : out) t = be.download(t);
    return out;
  }
};

struct CudaLinearPlans : GpuTest {};

TEST_F(CudaLinearPlans, APreparedProductMakesNoPlanAndGivesTheSameResult) {
  const Products p;
  const Tensor ref = cpu_ref().linear_gelu_tanh(p.x, cpu_ref().weight(p.w8.codes, p.w8.scale), p.bias);
  for (bool tune : {false, true}) {
    auto prepared = backend_with_tuning(tune), cold = backend_with_tuning(tune);
    EXPECT_EQ(linear_plans_made(*prepared), 0);
    EXPECT_TRUE(prepare_linears(*prepared, p.shapes())) << "tune " << tune;
    const int64_t made = linear_plans_made(*prepared);
    EXPECT_GE(made, 5) << "one plan per distinct product at least (q, k, v share one)";
    // Preparing again finds them all.
    EXPECT_TRUE(prepare_linears(*prepared, p.shapes()));
    EXPECT_EQ(linear_plans_made(*prepared), made);
    const std::vector<Tensor> got = p.run(*prepared);
    EXPECT_EQ(linear_plans_made(*prepared), made) << "tune " << tune << ": a prepared product made a plan";
    const std::vector<Tensor> want = p.run(*cold);
    EXPECT_EQ(linear_plans_made(*cold), made) << "the first calls made the plans preparation made";
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      if (!tune) EXPECT_TRUE(same_bits(got[i], want[i])) << "product " << i << ": the heuristic's kernel either way";
      else EXPECT_LT(rel_err(got[i], want[i]), 1e-2) << "product " << i;
    }
    EXPECT_LT(rel_err(got[0], ref), kFp8) << "tune " << tune;
    // The kept kernel runs from then on: a second call gives the first call's bits.
    EXPECT_TRUE(same_bits(p.run(*prepared)[0], got[0]));
  }
}

TEST_F(CudaLinearPlans, BadShapesAreRefusedAndEmptyOnesCostNothing) {
  LinearShape s;
  s.rows = 16, s.out = 32, s.width = 32;
  LinearShape bad = s;
  bad.rows = -1;
  EXPECT_THROW(prepare_linears(*gpu, {bad}), Error);
  bad = s;
  bad.first_column = 16, bad.columns = 32;
  EXPECT_THROW(prepare_linears(*gpu, {bad}), Error);
  LinearShape empty = s;
  empty.rows = 0;
  EXPECT_TRUE(prepare_linears(*gpu, {empty}));
  EXPECT_EQ(linear_plans_made(*gpu), 0) << "an empty product has no plan, as its call makes none";
}

// Random weights scaled like a trained network at head_dim 128; block matrices (2-D, under
// `blocks`) as fp8 codes when asked (their scale 1: values of N(0, 1/K) sit in e4m3's range).
std::unique_ptr<MemoryWeights> random_weights(const std::vector<std::pair<std::string, Shape>>& tensors,
                                              int64_t heads, const std::string& blocks, bool fp8) {
  auto w = std::make_unique<MemoryWeights>();
  uint64_t seed = 11;
  for (const auto& [name, shape] : tensors) {
    Tensor t = gaussian_noise(shape, ++seed);
    const bool matrix = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0 && shape.size() >= 2;
    const bool norm = !matrix && name.find("norm") != std::string::npos &&
                      (name.find(".weight") != std::string::npos || name.find(".scale") != std::string::npos);
    const double scale = matrix ? 1.0 / std::sqrt(double(shape_numel(shape) / shape[0])) : 0.1;
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = float((norm ? 1.0 : 0.0) + scale * t.f32()[i]);
    const bool block_matrix = matrix && shape.size() == 2 && name.find(blocks) != std::string::npos;
    w->put(name, fp8 && block_matrix ? t.to_dtype(DType::F8E4M3) : t);
  }
  w->set_metadata({{"raylight.num_heads", std::to_string(heads)}});
  return w;
}
std::unique_ptr<MemoryWeights> wan_weights(const WanConfig& c, bool fp8) {
  return random_weights(wan_expected_tensors(c), c.num_heads, "blocks.", fp8);
}

TEST_F(CudaLinearPlans, AWanForwardMakesNoPlanAfterPreparation) {
  // The FFN's products (2304 x 4096 x 1024) are large enough to be timed, the attention's not.
  WanConfig c;
  c.dim = 1024, c.num_heads = 8, c.ffn_dim = 4096, c.num_layers = 2, c.text_dim = 256;
  WanInputs in;
  in.latent = gaussian_noise({16, 9, 32, 32}, 7);
  in.context = gaussian_noise({40, c.text_dim}, 8);
  in.timestep = 731;
  for (bool fp8 : {false, true}) {
    LoadedModel prepared = load_model(wan_weights(c, fp8), poisoned_backend());
    LoadedModel cold = load_model(wan_weights(c, fp8), poisoned_backend());
    const ProductPlans r = prepare_product_plans(prepared, in.latent.shape());
    EXPECT_TRUE(r.prepared) << "fp8 " << fp8;
    EXPECT_EQ(r.products, 2 + 1 + c.num_layers * 10);
    EXPECT_GT(r.plans_made, 0);
    const int64_t made = linear_plans_made(*prepared.backend);
    const Tensor got = wan_of(prepared).forward(in);
    EXPECT_EQ(linear_plans_made(*prepared.backend), made) << "fp8 " << fp8 << ": the forward made a plan";
    const Tensor want = wan_of(cold).forward(in);
    EXPECT_EQ(linear_plans_made(*cold.backend), made) << "fp8 " << fp8 << ": the list misses or adds a product";
    EXPECT_LT(rel_err(got, want), 1e-2) << "fp8 " << fp8;
    EXPECT_EQ(prepare_product_plans(prepared, in.latent.shape()).plans_made, 0) << "a second job makes none";
  }
}

TEST_F(CudaLinearPlans, AFluxForwardMakesNoPlanAfterPreparation) {
  // Two streams over their own rows, linear1's two products and linear2's pair; the single
  // blocks' MLP products (1536 x 4096 x 1024) are large enough to be timed.
  FluxConfig c;
  c.hidden = 1024, c.num_heads = 8, c.mlp_hidden = 4096, c.depth = 1, c.depth_single = 2;
  c.context_in = 256, c.vec_in = 64;
  for (bool fp8 : {false, true}) {
    LoadedModel prepared = load_model(random_weights(flux_expected_tensors(c), c.num_heads, "blocks.", fp8),
                                      poisoned_backend());
    LoadedModel cold = load_model(random_weights(flux_expected_tensors(c), c.num_heads, "blocks.", fp8),
                                  poisoned_backend());
    const Shape item = prepared.spec->latent_shape({512, 512, 1});
    ASSERT_EQ(item, (Shape{16, 64, 64}));
    // The T5 tokens at the length the pipeline pads them to (512 for dev).
    const Conditioning cond = prepared.spec->check_conditioning(prepared.spec->example_conditioning(item, 5), item);
    const Tensor latent = gaussian_noise(item, 6);
    const ProductPlans r = prepare_product_plans(prepared, item);
    EXPECT_TRUE(r.prepared) << "fp8 " << fp8;
    EXPECT_GT(r.plans_made, 0);
    const int64_t made = linear_plans_made(*prepared.backend);
    auto forward = [&](LoadedModel& m) { return m.denoiser->predict(latent, 500.0, *m.denoiser->prepare(cond)); };
    const Tensor got = forward(prepared);
    EXPECT_EQ(linear_plans_made(*prepared.backend), made) << "fp8 " << fp8 << ": the forward made a plan";
    const Tensor want = forward(cold);
    EXPECT_EQ(linear_plans_made(*cold.backend), made) << "fp8 " << fp8 << ": the list misses or adds a product";
    EXPECT_LT(rel_err(got, want), 1e-2) << "fp8 " << fp8;
  }
}

}  // namespace
