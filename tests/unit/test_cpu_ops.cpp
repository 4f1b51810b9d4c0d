// The CPU reference ops against direct formulas at small shapes, including the properties
// Ring attention and sequence splitting depend on (masking equals truncation, log-sum-exp
// merges, patchify inverts unpatchify).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "backend/backend.h"
#include "backend/rope_table.h"
#include "core/error.h"
#include "sampling/noise.h"

using namespace raylight;

namespace {

// The CPU reference backend (operands checked like every backend's).
inline Backend& cpu_ref() {
  static std::unique_ptr<Backend> be = make_cpu_backend();
  return *be;
}

Tensor randn(Shape s, uint64_t seed) { return gaussian_noise(s, seed); }

float max_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  float m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.f32()[i] - b.f32()[i]));
  return m;
}

}  // namespace

TEST(CpuOps, LinearMatchesNaiveProductAtOddShapes) {
  for (auto [M, K, N] : {std::tuple{1, 1, 1}, {7, 13, 5}, {33, 64, 517}, {3, 200, 9}}) {
    Tensor x = randn({M, K}, 1), w = randn({N, K}, 2), b = randn({N}, 3);
    Tensor y = cpu_ref().linear(x, w, b);
    Tensor y_nobias = cpu_ref().linear(x, w, {});
    for (int m = 0; m < M; ++m)
      for (int n = 0; n < N; ++n) {
        double acc = 0;
        for (int k = 0; k < K; ++k) acc += double(x.f32()[m * K + k]) * w.f32()[n * K + k];
        EXPECT_NEAR(y.f32()[m * N + n], acc + b.f32()[n], 1e-4);
        EXPECT_NEAR(y_nobias.f32()[m * N + n], acc, 1e-4);
      }
  }
  EXPECT_THROW(cpu_ref().linear(randn({2, 3}, 1), randn({4, 5}, 2), {}), raylight::Error);
}

TEST(CpuOps, LayerNormAndRmsNorm) {
  Tensor x = randn({5, 37}, 4), w = randn({37}, 5), b = randn({37}, 6);
  Tensor plain = cpu_ref().layer_norm(x, {}, {}, 1e-6f);
  for (int r = 0; r < 5; ++r) {
    double mean = 0, var = 0;
    for (int i = 0; i < 37; ++i) mean += plain.f32()[r * 37 + i];
    for (int i = 0; i < 37; ++i) var += std::pow(plain.f32()[r * 37 + i] - mean / 37, 2);
    EXPECT_NEAR(mean / 37, 0.0, 1e-6);
    EXPECT_NEAR(var / 37, 1.0, 1e-4);
  }
  Tensor affine = cpu_ref().layer_norm(x, w, b, 1e-6f);
  for (int i = 0; i < 5 * 37; ++i)
    EXPECT_NEAR(affine.f32()[i], plain.f32()[i] * w.f32()[i % 37] + b.f32()[i % 37], 1e-5);
  Tensor rms = cpu_ref().rms_norm(x, w, 1e-6f);
  for (int r = 0; r < 5; ++r) {
    double ss = 0;
    for (int i = 0; i < 37; ++i) ss += std::pow(x.f32()[r * 37 + i], 2);
    double inv = 1 / std::sqrt(ss / 37 + 1e-6);
    for (int i = 0; i < 37; ++i)
      EXPECT_NEAR(rms.f32()[r * 37 + i], x.f32()[r * 37 + i] * inv * w.f32()[i], 1e-5);
  }
  EXPECT_THROW(cpu_ref().rms_norm(x, randn({36}, 1), 1e-6f), raylight::Error);
}

TEST(CpuOps, ActivationsMatchKnownValues) {
  Tensor x = Tensor::from_vector({4}, {-2.0f, 0.0f, 1.0f, 3.0f});
  Tensor gt = cpu_ref().gelu_tanh(x), ge = cpu_ref().gelu_erf(x), s = cpu_ref().silu(x);
  // Values from the defining formulas (PyTorch gives the same to fp32 precision).
  EXPECT_NEAR(gt.f32()[0], -0.04540230591222, 1e-6);
  EXPECT_NEAR(gt.f32()[2], 0.84119199060827, 1e-6);
  EXPECT_NEAR(ge.f32()[0], -0.04550026389636, 1e-6);
  EXPECT_NEAR(ge.f32()[2], 0.84134474606854, 1e-6);
  EXPECT_NEAR(s.f32()[2], 0.73105857863000, 1e-6);
  EXPECT_NEAR(s.f32()[3], 2.85772238047, 1e-5);
  EXPECT_EQ(gt.f32()[1], 0.0f);
}

TEST(CpuOps, ModulateAndGatedResidual) {
  Tensor x = randn({3, 8}, 7), shift = randn({8}, 8), scale = randn({8}, 9), gate = randn({8}, 10);
  Tensor m = cpu_ref().modulate(x, shift, scale);
  Tensor acc = x.clone();
  cpu_ref().add_gated(acc, m, gate);
  for (int i = 0; i < 24; ++i) {
    float expect_m = x.f32()[i] * (1 + scale.f32()[i % 8]) + shift.f32()[i % 8];
    EXPECT_FLOAT_EQ(m.f32()[i], expect_m);
    EXPECT_FLOAT_EQ(acc.f32()[i], x.f32()[i] + expect_m * gate.f32()[i % 8]);
  }
}

TEST(CpuOps, AttentionMatchesSoftmaxFormula) {
  const int Lq = 5, Lk = 9, H = 3, D = 8;
  Tensor q = randn({Lq, H, D}, 11), k = randn({Lk, H, D}, 12), v = randn({Lk, H, D}, 13);
  Tensor lse;
  Tensor o = cpu_ref().attention(q, k, v, -1, &lse);
  for (int h = 0; h < H; ++h)
    for (int i = 0; i < Lq; ++i) {
      std::vector<double> s(Lk);
      double mx = -1e30, sum = 0;
      for (int j = 0; j < Lk; ++j) {
        double d = 0;
        for (int c = 0; c < D; ++c) d += q.f32()[(i * H + h) * D + c] * k.f32()[(j * H + h) * D + c];
        s[j] = d / std::sqrt(double(D));
        mx = std::max(mx, s[j]);
      }
      for (int j = 0; j < Lk; ++j) sum += std::exp(s[j] - mx);
      EXPECT_NEAR(lse.f32()[h * Lq + i], mx + std::log(sum), 1e-5);
      for (int c = 0; c < D; ++c) {
        double acc = 0;
        for (int j = 0; j < Lk; ++j) acc += std::exp(s[j] - mx) / sum * v.f32()[(j * H + h) * D + c];
        EXPECT_NEAR(o.f32()[(i * H + h) * D + c], acc, 1e-5);
      }
    }
}

TEST(CpuOps, MaskedKeysEqualTruncatedKeys) {
  const int Lq = 4, Lk = 11, valid = 6, H = 2, D = 16;
  Tensor q = randn({Lq, H, D}, 21), k = randn({Lk, H, D}, 22), v = randn({Lk, H, D}, 23);
  Tensor masked = cpu_ref().attention(q, k, v, valid, nullptr);
  Tensor trunc = cpu_ref().attention(q, k.slice_rows(0, valid), v.slice_rows(0, valid), -1, nullptr);
  EXPECT_EQ(max_diff(masked, trunc), 0.0f);
  EXPECT_THROW(cpu_ref().attention(q, k, v, 0, nullptr), raylight::Error);
}

TEST(CpuOps, LogSumExpMergesKeyBlocks) {
  // Attention over keys [A|B] equals merging attention over A and over B by their LSE:
  // the identity Ring attention relies on.
  const int Lq = 6, H = 2, D = 8;
  Tensor q = randn({Lq, H, D}, 31), k = randn({10, H, D}, 32), v = randn({10, H, D}, 33);
  Tensor lse_a, lse_b;
  Tensor full = cpu_ref().attention(q, k, v, -1, nullptr);
  Tensor a = cpu_ref().attention(q, k.slice_rows(0, 4), v.slice_rows(0, 4), -1, &lse_a);
  Tensor b = cpu_ref().attention(q, k.slice_rows(4, 10), v.slice_rows(4, 10), -1, &lse_b);
  for (int i = 0; i < Lq; ++i)
    for (int h = 0; h < H; ++h) {
      double la = lse_a.f32()[h * Lq + i], lb = lse_b.f32()[h * Lq + i];
      double m = std::max(la, lb), wa = std::exp(la - m), wb = std::exp(lb - m);
      for (int c = 0; c < D; ++c) {
        size_t idx = (i * H + h) * D + c;
        double merged = (wa * a.f32()[idx] + wb * b.f32()[idx]) / (wa + wb);
        EXPECT_NEAR(full.f32()[idx], merged, 1e-5);
      }
    }
}

TEST(CpuOps, PatchifyInvertsUnpatchify) {
  Tensor x = randn({3, 2, 6, 10}, 41);
  PatchSize p{1, 2, 2};
  Tensor t = cpu_ref().patchify(x, p);
  ASSERT_EQ(t.shape(), (Shape{2 * 3 * 5, 12}));
  // Token (f=1,h=2,w=3), feature (c=2, kh=1, kw=0) is x[2, 1, 5, 6].
  EXPECT_EQ(t.f32()[(1 * 15 + 2 * 5 + 3) * 12 + (2 * 4 + 1 * 2 + 0)], x.f32()[((2 * 2 + 1) * 6 + 5) * 10 + 6]);
  // unpatchify expects features ordered (kh, kw, c): reorder, then invert.
  Tensor re = Tensor::empty(t.shape());
  for (int tok = 0; tok < 30; ++tok)
    for (int c = 0; c < 3; ++c)
      for (int q = 0; q < 4; ++q) re.f32()[tok * 12 + q * 3 + c] = t.f32()[tok * 12 + c * 4 + q];
  EXPECT_EQ(max_diff(cpu_ref().unpatchify(re, 2, 3, 5, 3, p), x), 0.0f);
  EXPECT_THROW(cpu_ref().patchify(randn({3, 2, 5, 10}, 1), p), raylight::Error);
}

TEST(CpuOps, RopeRotatesPairsByPositionAngles) {
  RopeAxes axes = wan_rope_axes(128);
  EXPECT_EQ(axes.frame, 44);
  EXPECT_EQ(axes.height, 42);
  EXPECT_EQ(axes.width, 42);
  Tensor table = rope_table_3d(3, 4, 5, wan_rope_axes(12), 10000.0, 0, 60);
  ASSERT_EQ(table.shape(), (Shape{60, 6, 2}));
  // Axes for head_dim 12: frame 4 channels (2 pairs), height 4 (2), width 4 (2).
  // Token 37 = (f=1, h=3, w=2); pair 3 is the height axis, k=1: angle 3 * 10000^(-2/4).
  const double angle = 3 * std::pow(10000.0, -0.5);
  EXPECT_NEAR(table.f32()[(37 * 6 + 3) * 2], std::cos(angle), 1e-6);
  EXPECT_NEAR(table.f32()[(37 * 6 + 3) * 2 + 1], std::sin(angle), 1e-6);
  // A slice of the table equals the same rows of the whole table.
  Tensor part = rope_table_3d(3, 4, 5, wan_rope_axes(12), 10000.0, 25, 10);
  for (int i = 0; i < part.numel(); ++i) EXPECT_EQ(part.f32()[i], table.f32()[25 * 12 + i]);
  // Rotation keeps each pair's length and leaves token 0 unchanged.
  Tensor x = randn({60, 2, 12}, 51);
  Tensor y = x.clone();
  cpu_ref().apply_rope(y, table);
  for (int i = 0; i < 24; ++i) EXPECT_FLOAT_EQ(y.f32()[i], x.f32()[i]);
  for (int p = 0; p < 60 * 2 * 6; ++p) {
    double n0 = std::hypot(x.f32()[2 * p], x.f32()[2 * p + 1]);
    double n1 = std::hypot(y.f32()[2 * p], y.f32()[2 * p + 1]);
    EXPECT_NEAR(n0, n1, 1e-5);
  }
}

TEST(CpuOps, OffsetBiasedAttentionAddsTheBiasOfEachOffset) {
  const int L = 7, H = 2, D = 8;
  Tensor q = randn({L, H, D}, 61), k = randn({L, H, D}, 62), v = randn({L, H, D}, 63);
  // A zero bias with scale 1/sqrt(D) is plain attention.
  Tensor plain = cpu_ref().attention(q, k, v, -1, nullptr);
  Tensor zero = cpu_ref().attention_offset_bias(q, k, v, Tensor::zeros({H, 2 * L - 1}), 1.0f / std::sqrt(8.0f));
  EXPECT_LT(max_diff(plain, zero), 1e-6f);
  // A large bias on offset +2 (key = query + 2) makes each query copy that key's value.
  Tensor bias = Tensor::zeros({H, 2 * L - 1});
  for (int h = 0; h < H; ++h) bias.f32()[h * (2 * L - 1) + (L - 1) + 2] = 60.0f;
  Tensor picked = cpu_ref().attention_offset_bias(q, k, v, bias, 0.0f);
  for (int i = 0; i + 2 < L; ++i)
    for (int h = 0; h < H; ++h)
      for (int d = 0; d < D; ++d)
        EXPECT_NEAR(picked.f32()[(i * H + h) * D + d], v.f32()[((i + 2) * H + h) * D + d], 1e-5);
  EXPECT_THROW(cpu_ref().attention_offset_bias(q, k, v, Tensor::zeros({H, L}), 1.0f), raylight::Error);
}

TEST(CpuOps, ConcatColumnsPlacesRowsSideBySide) {
  auto be = make_cpu_backend();
  const Tensor a = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor b = Tensor::from_vector({2, 1}, {7, 8});
  const Tensor c = be->concat_columns(a, b);
  ASSERT_EQ(c.shape(), (Shape{2, 4}));
  const std::vector<float> want = {1, 2, 3, 7, 4, 5, 6, 8};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(c.f32()[i], want[i]) << i;
  EXPECT_THROW(be->concat_columns(a, Tensor::zeros({3, 1})), Error);
}

namespace {

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.f32(), b.f32(), a.nbytes()) == 0;
}

}  // namespace

// The fused attention operands give the CPU's unfused results bit for bit (the goldens and
// every rank layout test rely on it): split + rms_norm + apply_rope, per head and per row.
TEST(CpuOps, FusedQkNormRopeEqualsTheUnfusedOpsBitForBit) {
  Backend& be = cpu_ref();
  const int64_t H = 3, D = 12, lt = 4, h = 2, w = 5, L = lt + h * w;
  // A joint sequence: unrotated text rows, then a rotated image grid, as the seam's table.
  Tensor table = Tensor::empty({L, D / 2, 2});
  for (int64_t i = 0; i < lt * D / 2; ++i) table.f32()[2 * i] = 1.0f, table.f32()[2 * i + 1] = 0.0f;
  Tensor img = rope_table_3d(1, h, w, wan_rope_axes(int(D)), 1e4, 0, h * w, {0, 0, 0});
  std::memcpy(table.f32() + lt * D, img.f32(), img.nbytes());
  for (QkNormSpan span : {QkNormSpan::Head, QkNormSpan::Row}) {
    const int64_t n = span == QkNormSpan::Head ? D : H * D;
    const Tensor txt = randn({lt, 3 * H * D}, 11), im = randn({h * w, 3 * H * D}, 12);
    const Tensor qw = randn({n}, 13), kw = randn({n}, 14);
    Tensor q = be.empty({L, H, D}), k = be.empty({L, H, D}), v = be.empty({L, H, D});
    be.qkv_norm_rope(txt, qw, kw, span, 1e-6f, table, q, k, v, 0);
    be.qkv_norm_rope(im, qw, kw, span, 1e-6f, table, q, k, v, lt);
    // Unfused: the [rows, 3, H*D] transpose, the norms, the rows stacked, RoPE on all rows.
    const Tensor joint = be.concat_rows(txt, im);
    const Tensor parts = be.swap_leading(joint.reshape({L, 3, H * D}));
    auto part = [&](int i) { return parts.slice_rows(i, i + 1).reshape({L * H * D / n, n}); };
    Tensor uq = be.rms_norm(part(0), qw, 1e-6f).reshape({L, H, D});
    Tensor uk = be.rms_norm(part(1), kw, 1e-6f).reshape({L, H, D});
    be.apply_rope(uq, table);
    be.apply_rope(uk, table);
    EXPECT_TRUE(bitwise_equal(q, uq)) << "q, span " << int(span);
    EXPECT_TRUE(bitwise_equal(k, uk)) << "k, span " << int(span);
    EXPECT_TRUE(bitwise_equal(v, part(2).reshape({L, H, D}).clone())) << "v, span " << int(span);
  }
}

TEST(CpuOps, NormRopeEqualsRmsNormThenRopeBitForBit) {
  Backend& be = cpu_ref();
  const int64_t H = 4, D = 16, rows = 9;
  const Tensor x = randn({rows, H * D}, 21), wr = randn({H * D}, 22);
  const Tensor table = rope_table_3d(1, 3, 3, wan_rope_axes(int(D)), 1e4, 0, rows, {0, 0, 0});
  Tensor fused = be.norm_rope(x, wr, QkNormSpan::Row, 1e-6f, table, H);
  Tensor unfused = be.rms_norm(x, wr, 1e-6f).reshape({rows, H, D});
  be.apply_rope(unfused, table);
  EXPECT_TRUE(bitwise_equal(fused, unfused));
  // No table: the norm alone.
  EXPECT_TRUE(bitwise_equal(be.norm_rope(x, wr, QkNormSpan::Row, 1e-6f, Tensor(), H),
                            be.rms_norm(x, wr, 1e-6f).reshape({rows, H, D})));
}

TEST(CpuOps, LinearPairEqualsTheProductOfTheConcatenation) {
  Backend& be = cpu_ref();
  const Tensor a = randn({5, 7}, 31), b = randn({5, 9}, 32), w = randn({6, 16}, 33), bias = randn({6}, 34);
  EXPECT_TRUE(bitwise_equal(be.linear_pair(a, b, w, bias), be.linear(be.concat_columns(a, b), w, bias)));
}
