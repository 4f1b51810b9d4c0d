// The norms' absmax feeding fp8 products on the device (issue #19): an fp8 linear,
// linear_gelu_tanh or linears given the absmax that layer_norm_modulate / add_gated_layer_norm
// wrote for its output gives exactly the bits it gives when it measures the output itself
// (the same e4m3 codes and scale), at Wan-like widths with the residual and modulation in
// fp32 as Wan keeps them. And the argument is really used: a wrong absmax changes the result.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "cuda_test_util.h"

using namespace raylight;
using namespace raylight::test;

namespace {

constexpr double kFp8 = 5e-2;

float host_absmax(const Tensor& t) {
  float m = 0.0f;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::fmax(m, std::fabs(t.f32()[i]));
  return m;
}

struct CudaNormAbsmax : GpuTest {
  const int64_t M = 2048, K = 1536;
  Tensor weight(int64_t N) {
    const Fp8Weight w = fp8_weight(rand_bf16({N, K}, 1.0f / std::sqrt(float(K))));
    return gpu->weight(w.codes, w.scale);
  }
  // Every product of a norm's output h, with and without its absmax: bit for bit equal.
  void expect_products_equal(const Tensor& h, const Tensor& absmax, const char* norm) {
    const Tensor w1 = weight(1536), w2 = weight(2048), bias = up(rand_bf16({1536}, 0.1f));
    EXPECT_TRUE(same_bits(down(gpu->linear(h, w1, bias, absmax)), down(gpu->linear(h, w1, bias)))) << norm << ": linear";
    EXPECT_TRUE(same_bits(down(gpu->linear_gelu_tanh(h, w2, {}, absmax)), down(gpu->linear_gelu_tanh(h, w2, {}))))
        << norm << ": linear_gelu_tanh";
    // q, k and v as Wan's block has them, and an FFN-like GELU term and a bf16 weight beside.
    const std::vector<LinearTerm> terms = {{w1, bias}, {weight(1536), {}}, {w2, {}, true},
                                           {up(rand_bf16({512, K}, 1.0f / std::sqrt(float(K)))), {}}};
    const std::vector<Tensor> given = gpu->linears(h, terms, absmax), own = gpu->linears(h, terms);
    ASSERT_EQ(given.size(), terms.size());
    for (size_t i = 0; i < terms.size(); ++i)
      EXPECT_TRUE(same_bits(down(given[i]), down(own[i]))) << norm << ": linears term " << i;
  }
};

TEST_F(CudaNormAbsmax, LayerNormModulateAbsmaxGivesTheProductsOwnBits) {
  const Tensor x = gpu->upload_f32(rand_bf16({M, K}, 2.0f, 0.5f));
  const Tensor shift = gpu->upload_f32(rand_bf16({K}, 0.3f)), scale = gpu->upload_f32(rand_bf16({K}, 0.3f));
  Tensor absmax;
  const Tensor h = gpu->layer_norm_modulate(x, shift, scale, 1e-6f, false, &absmax);
  ASSERT_EQ(absmax.numel(), 1);
  const float got = down(absmax).f32()[0], want = host_absmax(down(h));
  EXPECT_EQ(got, want) << "the absmax is of the bf16 output as stored";
  EXPECT_GT(want, 0.0f);
  expect_products_equal(h, absmax, "layer_norm_modulate");
}

TEST_F(CudaNormAbsmax, AddGatedLayerNormAbsmaxGivesTheProductsOwnBits) {
  // Wan's three forms: norm3 (fp32 gate, affine), the FFN's norm (plain add, modulated), and
  // the next block's norm with the pending FFN residual (fp32 gate, modulated).
  struct Form { bool gate, affine, mod; const char* what; };
  for (Form f : {Form{true, true, false, "norm3"}, {false, false, true, "ffn norm"}, {true, false, true, "pending"}}) {
    Tensor x = gpu->upload_f32(rand_bf16({M, K}, 2.0f, 0.5f));
    const Tensor y = up(rand_bf16({M, K}));
    const Tensor gate = f.gate ? gpu->upload_f32(rand_bf16({K}, 0.5f)) : Tensor();
    const Tensor w = f.affine ? up(rand_bf16({K}, 0.1f, 1.0f)) : Tensor(), b = f.affine ? up(rand_bf16({K}, 0.1f)) : Tensor();
    const Tensor shift = f.mod ? gpu->upload_f32(rand_bf16({K}, 0.3f)) : Tensor();
    const Tensor scale = f.mod ? gpu->upload_f32(rand_bf16({K}, 0.3f)) : Tensor();
    Tensor absmax;
    const Tensor h = gpu->add_gated_layer_norm(x, y, gate, w, b, shift, scale, 1e-6f, &absmax);
    EXPECT_EQ(down(absmax).f32()[0], host_absmax(down(h))) << f.what;
    expect_products_equal(h, absmax, f.what);
  }
}

TEST_F(CudaNormAbsmax, AWrongAbsmaxChangesTheProduct) {
  // Were the argument ignored, the equality above would hold trivially: twice the true value
  // halves the codes' range, so the product differs (while staying close to the CPU's).
  const Tensor xh = rand_bf16({M, K}, 2.0f, 0.5f);
  const Tensor shift = gpu->upload_f32(rand_bf16({K}, 0.3f)), scale = gpu->upload_f32(rand_bf16({K}, 0.3f));
  Tensor absmax;
  const Tensor h = gpu->layer_norm_modulate(gpu->upload_f32(xh), shift, scale, 1e-6f, false, &absmax);
  Tensor doubled = Tensor::zeros({1});
  doubled.f32()[0] = 2.0f * down(absmax).f32()[0];
  const Tensor wrong = gpu->upload_f32(doubled);
  const Fp8Weight w = fp8_weight(rand_bf16({1536, K}, 1.0f / std::sqrt(float(K))));
  const Tensor wd = gpu->weight(w.codes, w.scale);
  const Tensor own = down(gpu->linear(h, wd, {})), off = down(gpu->linear(h, wd, {}, wrong));
  EXPECT_FALSE(same_bits(off, own)) << "linear";
  EXPECT_FALSE(same_bits(down(gpu->linears(h, {{wd, {}}}, wrong)[0]), own)) << "linears";
  EXPECT_FALSE(same_bits(down(gpu->linear_gelu_tanh(h, wd, {}, wrong)), down(gpu->linear_gelu_tanh(h, wd, {}))))
      << "linear_gelu_tanh";
  const Tensor ref = cpu_ref().linear(down(h), cpu_ref().weight(w.codes, w.scale), {});
  EXPECT_LT(rel_err(off, ref), kFp8);
  EXPECT_LT(rel_err(own, ref), kFp8);
}

}  // namespace
