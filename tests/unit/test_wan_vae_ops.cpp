// The video VAE's CPU kernels (conv3d, channel_rms_norm, upsample_nearest2x) against
// direct formulas, including the property the chunked VAE relies on: convolving x with
// cached `past` frames equals convolving the concatenated clip, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "backend/backend.h"
#include "core/error.h"
#include "sampling/noise.h"

using namespace raylight;

namespace {

// The CPU reference backend (operands checked like every backend's).
inline Backend& cpu_ref() {
  static std::unique_ptr<Backend> be = make_cpu_backend();
  return *be;
}

using Spec = Backend::Conv3dSpec;

float max_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return INFINITY;
  float m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.f32()[i] - b.f32()[i]));
  return m;
}

Tensor frames_concat(const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::empty({a.dim(0) + b.dim(0), a.dim(1), a.dim(2), a.dim(3)});
  std::memcpy(out.f32(), a.f32(), a.nbytes());
  std::memcpy(out.f32() + a.numel(), b.f32(), b.nbytes());
  return out;
}

// PyTorch Conv3d on zero-padded frames (pad_t zeros, past, x), in double.
Tensor naive_conv3d(const Tensor& x_in, const Tensor& past, const Tensor& w, const Tensor& b, const Spec& s) {
  const Tensor x = past.defined() ? frames_concat(past, x_in) : x_in;
  const int64_t T = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t Co = w.dim(0), kt = w.dim(2), kh = w.dim(3), kw = w.dim(4);
  const int64_t To = (T + s.pad_t - kt) / s.stride_t + 1;
  const int64_t Ho = (H + s.pad_top + s.pad_bottom - kh) / s.stride_h + 1;
  const int64_t Wo = (W + s.pad_left + s.pad_right - kw) / s.stride_w + 1;
  Tensor y = Tensor::empty({To, Co, Ho, Wo});
  for (int64_t t = 0; t < To; ++t)
    for (int64_t o = 0; o < Co; ++o)
      for (int64_t i = 0; i < Ho; ++i)
        for (int64_t j = 0; j < Wo; ++j) {
          double acc = b.defined() ? b.f32()[o] : 0.0;
          for (int64_t c = 0; c < C; ++c)
            for (int64_t a = 0; a < kt; ++a)
              for (int64_t p = 0; p < kh; ++p)
                for (int64_t q = 0; q < kw; ++q) {
                  const int64_t ft = t * s.stride_t + a - s.pad_t;
                  const int64_t fh = i * s.stride_h + p - s.pad_top;
                  const int64_t fw = j * s.stride_w + q - s.pad_left;
                  if (ft < 0 || fh < 0 || fh >= H || fw < 0 || fw >= W) continue;
                  acc += double(x.f32()[((ft * C + c) * H + fh) * W + fw]) *
                         w.f32()[(((o * C + c) * kt + a) * kh + p) * kw + q];
                }
          y.f32()[((t * Co + o) * Ho + i) * Wo + j] = static_cast<float>(acc);
        }
  return y;
}

}  // namespace

TEST(WanVaeOps, Conv3dMatchesNaiveLoops) {
  struct Case {
    Shape x, past, w;
    Spec s;
    bool bias;
  };
  Spec causal;  // 3x3x3, 2 zero frames, 1 pixel around
  causal.pad_t = 2;
  causal.pad_top = causal.pad_bottom = causal.pad_left = causal.pad_right = 1;
  Spec cached = causal;  // one cached frame, so one zero frame
  cached.pad_t = 1;
  Spec down;  // ZeroPad2d((0,1,0,1)) + stride-2 3x3
  down.stride_h = down.stride_w = 2;
  down.pad_bottom = down.pad_right = 1;
  Spec time_down;
  time_down.stride_t = 2;
  Spec odd;
  odd.stride_t = 1, odd.stride_h = 3, odd.stride_w = 2, odd.pad_t = 1, odd.pad_left = 2;
  const Case cases[] = {
      {{3, 5, 7, 11}, {}, {6, 5, 3, 3, 3}, causal, true},
      {{2, 4, 5, 9}, {1, 4, 5, 9}, {5, 4, 3, 3, 3}, cached, true},
      {{1, 3, 6, 10}, {2, 3, 6, 10}, {4, 3, 3, 3, 3}, {}, false},
      {{4, 6, 9, 13}, {}, {3, 6, 1, 1, 1}, {}, true},
      {{2, 5, 8, 12}, {}, {5, 5, 1, 3, 3}, down, true},
      {{4, 3, 2, 17}, {1, 3, 2, 17}, {7, 3, 3, 1, 1}, time_down, true},
      {{3, 2, 7, 9}, {}, {9, 2, 2, 3, 4}, odd, true},
      {{1, 4, 16, 16}, {}, {3, 4, 3, 3, 3}, causal, true},
  };
  uint64_t seed = 10;
  for (const auto& c : cases) {
    Tensor x = gaussian_noise(c.x, seed++), w = gaussian_noise(c.w, seed++);
    Tensor past = c.past.empty() ? Tensor() : gaussian_noise(c.past, seed++);
    Tensor b = c.bias ? gaussian_noise({c.w[0]}, seed++) : Tensor();
    Tensor got = cpu_ref().conv3d(x, past, w, b, c.s);
    EXPECT_LT(max_diff(got, naive_conv3d(x, past, w, b, c.s)), 2e-5f) << shape_str(c.x) << " " << shape_str(c.w);
  }
}

TEST(WanVaeOps, Conv3dWithPastEqualsConvOfConcatenatedClip) {
  Tensor a = gaussian_noise({3, 6, 5, 9}, 1), x = gaussian_noise({4, 6, 5, 9}, 2);
  Tensor w = gaussian_noise({5, 6, 3, 3, 3}, 3), b = gaussian_noise({5}, 4);
  Spec whole;
  whole.pad_t = 2;
  whole.pad_top = whole.pad_bottom = whole.pad_left = whole.pad_right = 1;
  Tensor all = cpu_ref().conv3d(frames_concat(a, x), {}, w, b, whole);
  // Streaming: the first chunk with 2 zero frames, the second with the last 2 frames cached.
  Tensor first = cpu_ref().conv3d(a, {}, w, b, whole);
  Spec next = whole;
  next.pad_t = 0;
  Tensor cache = Tensor::empty({2, 6, 5, 9});
  std::memcpy(cache.f32(), a.f32() + a.numel() / 3, cache.nbytes());
  Tensor second = cpu_ref().conv3d(x, cache, w, b, next);
  EXPECT_EQ(max_diff(frames_concat(first, second), all), 0.0f);
}

TEST(WanVaeOps, Conv3dRejectsMismatchedShapes) {
  Tensor x = gaussian_noise({1, 4, 5, 5}, 1);
  EXPECT_THROW(cpu_ref().conv3d(x, {}, gaussian_noise({2, 3, 1, 1, 1}, 2), {}, {}), Error);
  EXPECT_THROW(cpu_ref().conv3d(x, gaussian_noise({1, 4, 6, 5}, 3), gaussian_noise({2, 4, 1, 1, 1}, 2), {}, {}), Error);
  EXPECT_THROW(cpu_ref().conv3d(x, {}, gaussian_noise({2, 4, 3, 3, 3}, 2), {}, {}), Error);  // 1 frame < kt
  try {
    cpu_ref().conv3d(x.reshape({4, 5, 5}), {}, gaussian_noise({2, 4, 1, 1, 1}, 2), {}, {});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[T, C, H, W]"), std::string::npos) << e.what();
  }
}

TEST(WanVaeOps, ChannelRmsNormIsUnitRmsTimesGammaThenSilu) {
  const int64_t T = 2, C = 5, H = 3, W = 70;
  Tensor x = gaussian_noise({T, C, H, W}, 7), g = gaussian_noise({C}, 8);
  for (int64_t c = 0; c < C; ++c) x.f32()[c * H * W] = 0;  // an all-zero pixel stays 0 (norm clamped)
  Tensor plain = cpu_ref().channel_rms_norm(x, g, false), act = cpu_ref().channel_rms_norm(x, g, true);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t p = 0; p < H * W; ++p) {
      double ss = 0;
      for (int64_t c = 0; c < C; ++c) ss += std::pow(double(x.f32()[(t * C + c) * H * W + p]), 2);
      const double inv = std::sqrt(double(C)) / std::max(std::sqrt(ss), 1e-12);
      for (int64_t c = 0; c < C; ++c) {
        const int64_t i = (t * C + c) * H * W + p;
        const double v = x.f32()[i] * inv * g.f32()[c];
        ASSERT_NEAR(plain.f32()[i], v, 1e-5);
        ASSERT_NEAR(act.f32()[i], v / (1 + std::exp(-v)), 1e-5);
      }
    }
  EXPECT_EQ(plain.f32()[0], 0.0f);
  EXPECT_THROW(cpu_ref().channel_rms_norm(x, gaussian_noise({C + 1}, 9), false), Error);
}

TEST(WanVaeOps, UpsampleRepeatsEachPixelTwoByTwo) {
  Tensor x = gaussian_noise({2, 3, 4, 5}, 11);
  Tensor y = cpu_ref().upsample_nearest2x(x);
  ASSERT_EQ(y.shape(), (Shape{2, 3, 8, 10}));
  for (int64_t pl = 0; pl < 6; ++pl)
    for (int64_t i = 0; i < 8; ++i)
      for (int64_t j = 0; j < 10; ++j)
        ASSERT_EQ(y.f32()[(pl * 8 + i) * 10 + j], x.f32()[(pl * 4 + i / 2) * 5 + j / 2]);
}

