// Rows held as fp8 codes (backend/fp8_rows.h) on the CPU reference: dequantise is code *
// scale + offset; linear_fp8_rows equals dequantise-then-linear and the identity the GPU
// uses, scale * (W codes) + (b + W offset), computed here in double; hostile host inputs are
// refused; the CPU's attention never hands out codes; the LoRA wrapper and Wan's
// o-projection take the codes path (a sequence-attention double hands out codes, and the
// forward equals the one given the same values as a tensor).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>

#include "backend/backend.h"
#include "core/dtype.h"
#include "core/error.h"
#include "dist/communicator.h"
#include "io/checkpoint.h"
#include "models/wan/wan_config.h"
#include "models/wan/wan_model.h"
#include "parallel/checkpoint_weights.h"
#include "parallel/lora/lora_linear.h"
#include "parallel/usp_attention.h"
#include "sampling/noise.h"
#include "../tensor_compare.h"
#include "../wan_cases.h"

using namespace raylight;
using namespace raylight::test;

namespace {

Tensor randn(Shape s, uint64_t seed, float scale = 1.0f) {
  Tensor t = gaussian_noise(std::move(s), seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] *= scale;
  return t;
}

// e4m3 codes of v / scale (saturating), host.
Tensor codes_of(const Tensor& v, float scale) {
  Tensor c = Tensor::empty(v.shape(), DType::F8E4M3);
  for (int64_t i = 0; i < v.numel(); ++i) c.data<uint8_t>()[i] = f32_to_e4m3(v.f32()[i] / scale);
  return c;
}

constexpr float kScale = 4.5f / 448.0f;

struct Rows {
  Tensor codes, offset;
};

Rows make_rows(int64_t M, int64_t K, uint64_t seed) {
  return {codes_of(randn({M, K}, seed), kScale), randn({K}, seed + 1, 0.5f)};
}

}  // namespace

TEST(Fp8Rows, DequantiseIsCodeTimesScalePlusTheColumnOffset) {
  auto cpu = make_cpu_backend();
  const Rows r = make_rows(9, 21, 11);
  const Tensor got = cpu->dequantise(upload_fp8_rows(*cpu, r.codes, kScale, r.offset));
  ASSERT_EQ(got.shape(), (Shape{9, 21}));
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double want = double(e4m3_to_f32(r.codes.data<uint8_t>()[i])) * kScale + r.offset.f32()[i % 21];
    EXPECT_NEAR(got.f32()[i], want, 1e-6 * (1 + std::fabs(want))) << i;
  }
  const Tensor plain = cpu->dequantise(upload_fp8_rows(*cpu, r.codes, kScale, Tensor()));
  for (int64_t i = 0; i < plain.numel(); ++i)
    EXPECT_FLOAT_EQ(plain.f32()[i], e4m3_to_f32(r.codes.data<uint8_t>()[i]) * kScale) << i;
}

// The GPU's arithmetic (scale * (W codes) + (b + W offset)) in double against the reference op,
// and the reference op against dequantise + linear.
TEST(Fp8Rows, LinearEqualsDequantiseThenLinearAndTheFoldedBias) {
  auto cpu = make_cpu_backend();
  const int64_t M = 13, K = 48, N = 24;
  const Rows r = make_rows(M, K, 21);
  const Tensor w = randn({N, K}, 23, 1.0f / std::sqrt(float(K))), b = randn({N}, 24, 0.1f);
  const Fp8Rows x = upload_fp8_rows(*cpu, r.codes, kScale, r.offset);
  const Tensor got = cpu->linear_fp8_rows(x, cpu->weight(w, 1.0f), cpu->weight(b, 1.0f));
  const Tensor ref = cpu->linear(cpu->dequantise(x), cpu->weight(w, 1.0f), cpu->weight(b, 1.0f));
  ASSERT_EQ(got.shape(), (Shape{M, N}));
  EXPECT_EQ(max_abs_diff(got, ref), 0.0f);
  Tensor folded = Tensor::empty({M, N});
  for (int64_t n = 0; n < N; ++n) {
    double bias = b.f32()[n];
    for (int64_t k = 0; k < K; ++k) bias += double(w.f32()[n * K + k]) * r.offset.f32()[k];
    for (int64_t m = 0; m < M; ++m) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += double(w.f32()[n * K + k]) * e4m3_to_f32(r.codes.data<uint8_t>()[m * K + k]);
      folded.f32()[m * N + n] = static_cast<float>(kScale * acc + bias);
    }
  }
  EXPECT_LT(rel_l2(got, folded), 1e-6);
  // Without the offset the product is the codes' alone: a dropped offset is visible.
  const Tensor no_offset = cpu->linear_fp8_rows(upload_fp8_rows(*cpu, r.codes, kScale, Tensor()), cpu->weight(w, 1.0f),
                                                cpu->weight(b, 1.0f));
  EXPECT_GT(rel_l2(no_offset, folded), 1e-2);
}

TEST(Fp8Rows, UploadRefusesHostileInputs) {
  auto cpu = make_cpu_backend();
  const Rows r = make_rows(4, 8, 31);
  EXPECT_NO_THROW(upload_fp8_rows(*cpu, r.codes, kScale, r.offset));
  Tensor nan_code = r.codes.clone();
  nan_code.data<uint8_t>()[5] = 0x7f;
  EXPECT_THROW(upload_fp8_rows(*cpu, nan_code, kScale, r.offset), Error);
  nan_code.data<uint8_t>()[5] = 0xff;
  EXPECT_THROW(upload_fp8_rows(*cpu, nan_code, kScale, r.offset), Error);
  for (float s : {0.0f, -1.0f, std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()})
    EXPECT_THROW(upload_fp8_rows(*cpu, r.codes, s, r.offset), Error) << s;
  EXPECT_THROW(upload_fp8_rows(*cpu, r.codes, kScale, randn({7}, 1)), Error);
  Tensor bad_offset = r.offset.clone();
  bad_offset.f32()[2] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(upload_fp8_rows(*cpu, r.codes, kScale, bad_offset), Error);
  EXPECT_THROW(upload_fp8_rows(*cpu, randn({4, 8}, 2), kScale, r.offset), Error);  // fp32, not codes
  EXPECT_THROW(upload_fp8_rows(*cpu, r.codes.reshape({32}), kScale, Tensor()), Error);
  EXPECT_THROW(upload_fp8_rows(*cpu, Tensor(), kScale, Tensor()), Error);
}

// The CPU runs no fp8 attention in attention(): asked for codes, it returns the output and
// leaves the codes empty (also when they held rows before). So does the seam on one process.
TEST(Fp8Rows, CpuAttentionLeavesCodesEmpty) {
  auto cpu = make_cpu_backend();
  const Tensor q = randn({6, 2, 16}, 41), k = randn({9, 2, 16}, 42), v = randn({9, 2, 16}, 43);
  const Rows r = make_rows(6, 32, 44);
  Fp8Rows codes = upload_fp8_rows(*cpu, r.codes, kScale, r.offset);
  ASSERT_TRUE(codes.held());
  const Tensor with = cpu->attention(q, k, v, -1, nullptr, &codes);
  EXPECT_FALSE(codes.held());
  EXPECT_EQ(max_abs_diff(with, cpu->attention(q, k, v, -1, nullptr)), 0.0f);

  auto u = make_solo_communicator("ulysses"), ring = make_solo_communicator("ring");
  UspAttention seam(*cpu, *u, *ring);
  seam.prepare(SequenceLayout::single({1, 2, 3}, RopeAxes{8, 4, 4}, 10000.0));
  codes = upload_fp8_rows(*cpu, r.codes, kScale, r.offset);
  const Tensor out = seam.self_attention(q, q, q, QkRope::Apply, &codes);
  EXPECT_FALSE(codes.held());
  ASSERT_EQ(out.shape(), q.shape());
}

namespace {

// A store over another whose one weight has a side LoRA term (parallel/lora's side products).
class SideTermWeights final : public WeightStore {
 public:
  SideTermWeights(WeightStore& inner, std::string weight, LowRank lr)
      : inner_(inner), weight_(std::move(weight)), lr_(std::move(lr)) {}
  bool has(const std::string& n) const override { return inner_.has(n); }
  Shape shape(const std::string& n) const override { return inner_.shape(n); }
  DType stored_dtype(const std::string& n) const override { return inner_.stored_dtype(n); }
  std::vector<std::string> names() const override { return inner_.names(); }
  Stored stored(const std::string& n) const override { return inner_.stored(n); }
  LowRank low_rank(const std::string& w) override { return w == weight_ ? lr_ : LowRank{}; }

 private:
  WeightStore& inner_;
  std::string weight_;
  LowRank lr_;
};

}  // namespace

TEST(Fp8Rows, LoraWrapperAddsTheSideTermOverTheDequantisedRows) {
  auto cpu = make_cpu_backend();
  const int64_t M = 7, K = 32, N = 16, rank = 4;
  MemoryWeights base;
  base.put("o.weight", randn({N, K}, 51, 0.2f));
  base.put("o.bias", randn({N}, 52, 0.1f));
  base.bind(*cpu);
  const Rows r = make_rows(M, K, 53);
  const Fp8Rows x = upload_fp8_rows(*cpu, r.codes, kScale, r.offset);
  const Tensor bias = base.get("o.bias");
  // No side term: exactly linear_fp8_rows.
  EXPECT_EQ(max_abs_diff(lora_linear_fp8_rows(*cpu, base, x, "o.weight", bias),
                         cpu->linear_fp8_rows(x, base.get("o.weight"), bias)),
            0.0f);
  SideTermWeights side(base, "o.weight", {randn({rank, K}, 54, 0.3f), randn({N, rank}, 55, 0.3f)});
  side.bind(*cpu);
  const Tensor got = lora_linear_fp8_rows(*cpu, side, x, "o.weight", bias);
  const Tensor want = lora_linear(*cpu, side, cpu->dequantise(x), "o.weight", bias);
  EXPECT_EQ(max_abs_diff(got, want), 0.0f);
  // The side term is really there.
  EXPECT_GT(rel_l2(got, cpu->linear_fp8_rows(x, base.get("o.weight"), bias)), 1e-2);
}

namespace {

// Sequence attention that hands its self-attention output out as fp8 codes (per-tensor scale
// over the centred values, column means as the offset) when asked, the way fp8 attention on
// Hopper does, or returns the very values those codes hold as a tensor.
class CodesAttention final : public SequenceAttention {
 public:
  CodesAttention(SequenceAttention& inner, Backend& be, bool hand_codes) : in_(inner), be_(be), codes_(hand_codes) {}
  void prepare(const SequenceLayout& l) override { in_.prepare(l); }
  Tensor scatter_tokens(const Tensor& t, int s) override { return in_.scatter_tokens(t, s); }
  Tensor gather_tokens(const Tensor& t, int s) override { return in_.gather_tokens(t, s); }
  int64_t local_rows(int s) const override { return in_.local_rows(s); }
  int64_t segment_rows(int64_t tokens) const override { return in_.segment_rows(tokens); }
  const Tensor& rope_table() const override { return in_.rope_table(); }
  Tensor cross_attention(const Tensor& q, const Tensor& k, const Tensor& v) override {
    return in_.cross_attention(q, k, v);
  }
  Tensor self_attention(Tensor q, Tensor k, const Tensor& v, QkRope rope, Fp8Rows* codes) override {
    if (codes) *codes = Fp8Rows{};
    const Tensor out = in_.self_attention(q, k, v, rope);
    const int64_t L = out.dim(0), C = out.dim(1) * out.dim(2);
    const Tensor host = be_.download(out).reshape({L, C});
    Tensor mean = Tensor::zeros({C});
    for (int64_t i = 0; i < host.numel(); ++i) mean.f32()[i % C] += host.f32()[i] / float(L);
    float amax = 0;
    for (int64_t i = 0; i < host.numel(); ++i) amax = std::max(amax, std::fabs(host.f32()[i] - mean.f32()[i % C]));
    const float scale = std::max(amax, 1e-12f) / 448.0f;
    Tensor centred = host.clone();
    for (int64_t i = 0; i < centred.numel(); ++i) centred.f32()[i] -= mean.f32()[i % C];
    const Fp8Rows rows = upload_fp8_rows(be_, codes_of(centred, scale), scale, mean);
    if (codes && codes_) {
      *codes = rows;
      ++handed;
      return Tensor();
    }
    return be_.dequantise(rows).reshape(out.shape());
  }
  int handed = 0;

 private:
  SequenceAttention& in_;
  Backend& be_;
  bool codes_;
};

}  // namespace

// Wan's o-projection takes the codes when the seam hands them out (one per block), and the
// forward equals the one given the same values as a tensor.
TEST(Fp8Rows, WanOProjectionReadsTheCodes) {
  auto cpu = make_cpu_backend();
  CheckpointWeights weights(Checkpoint::open(fixture("wan_tiny_t2v.safetensors")));
  weights.bind(*cpu);
  const WanConfig config = detect_wan_config(weights);
  auto u = make_solo_communicator("ulysses"), ring = make_solo_communicator("ring");
  UspAttention usp(*cpu, *u, *ring);
  auto c = SafetensorsFile::open(fixture("wan_tiny_t2v_case.safetensors"));
  CodesAttention as_codes(usp, *cpu, true), as_values(usp, *cpu, false);
  const Tensor a = WanModel(config, weights, *cpu, as_codes).forward(wan_case_inputs(*c));
  const Tensor b = WanModel(config, weights, *cpu, as_values).forward(wan_case_inputs(*c));
  EXPECT_EQ(as_codes.handed, config.num_layers);
  EXPECT_EQ(as_values.handed, 0);
  ASSERT_EQ(a.shape(), b.shape());
  EXPECT_LT(rel_l2(a, b), 1e-6);
  // The quantised attention output is in effect (the comparison is not of two plain forwards).
  const Tensor plain = WanModel(config, weights, *cpu, usp).forward(wan_case_inputs(*c));
  EXPECT_GT(rel_l2(a, plain), 1e-5);
}
