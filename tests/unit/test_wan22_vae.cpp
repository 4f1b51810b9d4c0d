// The Wan 2.2 VAE (48 latent channels, 4x16x16) against golden outputs of the independent
// float64 PyTorch implementation in tests/fixtures/make_wan22_vae_golden.py (itself checked
// against the official wan/modules/vae2_2.py to 6e-15), on the embedded tiny weights (made
// by the same noise generator on both sides); the tiled decode against the whole one;
// recognition beside the Wan 2.1 VAE; the errors users see.
//
// Tolerances: the CPU path is fp32 against float64 goldens; observed errors are stated at
// the asserts. A slipped channel order in the patchify or a shortcut moves outputs by 0.05
// or more.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/common/latent_tiles.h"
#include "models/registry.h"
#include "models/vae/wan22_vae.h"
#include "models/vae/wan22_vae_tiny.h"
#include "models/vae/wan_vae_tiny.h"
#include "pipeline/tiled_decode.h"
#include "sampling/noise.h"

using namespace raylight;

namespace {

std::string fixture(const std::string& name) { return std::string(RAYLIGHT_FIXTURE_DIR) + "/" + name; }

float max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return INFINITY;
  float m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.f32()[i] - b.f32()[i]));
  return m;
}

template <typename F>
std::string error_of(F fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

class Wan22VaeTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  std::unique_ptr<Wan22Vae> vae = Wan22Vae::from_weights(wan22_vae_tiny_weights(), *cpu, "tiny");
  std::shared_ptr<SafetensorsFile> golden = SafetensorsFile::open(fixture("wan22_vae_tiny_case.safetensors"));
};

}  // namespace

TEST_F(Wan22VaeTest, DecodeMatchesReference) {
  int calls = 0;
  Tensor video = vae->decode(golden->tensor("latent").to_f32(), [&](int64_t done, int64_t total) {
    EXPECT_EQ(total, 2);
    EXPECT_EQ(done, ++calls);
  });
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(video.shape(), (Shape{3, 5, 32, 48}));
  EXPECT_LE(max_abs_diff(video, golden->tensor("video").to_f32()), 1e-5f);
}

TEST_F(Wan22VaeTest, EncodeMatchesReference) {
  Tensor mu = vae->encode(golden->tensor("input_video").to_f32());
  EXPECT_EQ(mu.shape(), (Shape{48, 2, 2, 3}));
  EXPECT_LE(max_abs_diff(mu, golden->tensor("mu").to_f32()), 2e-5f);
}

TEST_F(Wan22VaeTest, DetectsTheConfigAndIsNotTakenForWan21) {
  EXPECT_EQ(vae->config().enc_dim, 4);
  EXPECT_EQ(vae->config().dec_dim, 4);
  EXPECT_EQ(vae->config().z_dim, 48);
  auto cpu2 = make_cpu_backend();
  auto codec = make_latent_codec(std::unique_ptr<WeightStore>(wan22_vae_tiny_weights()), *cpu2, "tiny 2.2");
  EXPECT_EQ(codec->latent_channels(), 48);
  EXPECT_TRUE(contains(codec->variant(), "Wan 2.2 VAE")) << codec->variant();
  EXPECT_EQ(codec->tiling().scale, 16);
  auto old = make_latent_codec(std::unique_ptr<WeightStore>(wan_vae_tiny_weights()), *cpu2, "tiny 2.1");
  EXPECT_TRUE(contains(old->variant(), "Wan 2.1 VAE")) << old->variant();
}

TEST_F(Wan22VaeTest, RefusesWrongShapesAndFilesByName) {
  // A Wan 2.1 latent (16 channels) for the 48-channel VAE.
  std::string e = error_of([&] { vae->decode(gaussian_noise({16, 2, 2, 3}, 1)); });
  EXPECT_TRUE(contains(e, "48 latent channels")) << e;
  e = error_of([&] { vae->encode(gaussian_noise({3, 5, 24, 32}, 1)); });
  EXPECT_TRUE(contains(e, "multiples of 16")) << e;
  e = error_of([&] { vae->encode(gaussian_noise({3, 4, 32, 32}, 1)); });
  EXPECT_TRUE(contains(e, "1 + 4k")) << e;
  // A tensor of the wrong shape is named.
  auto w = wan22_vae_tiny_weights();
  w->put("decoder.upsamples.2.upsamples.3.resample.1.weight", Tensor::zeros({8, 9, 3, 3}));
  e = error_of([&] { Wan22Vae::from_weights(std::move(w), *cpu, "bad.safetensors"); });
  EXPECT_TRUE(contains(e, "bad.safetensors")) << e;
  EXPECT_TRUE(contains(e, "decoder.upsamples.2.upsamples.3.resample.1.weight")) << e;
  // The Wan 2.1 VAE is not a Wan 2.2 VAE.
  e = error_of([&] { Wan22Vae::from_weights(wan_vae_tiny_weights(), *cpu, "wan21.safetensors"); });
  EXPECT_TRUE(contains(e, "is not a Wan 2.2 VAE")) << e;
}

TEST_F(Wan22VaeTest, TiledDecodeEqualsWholeWithinTheBound) {
  auto codec = make_latent_codec(std::unique_ptr<WeightStore>(wan22_vae_tiny_weights()), *cpu, "tiny 2.2");
  const int64_t ctx = codec->tiling().exact_context;
  EXPECT_GE(ctx, 1);
  const Tensor latent = gaussian_noise({48, 2, 6, 7}, 0x2222);
  const Tensor whole = codec->decode(latent);
  EXPECT_EQ(whole.shape(), (Shape{3, 5, 96, 112}));
  // Uneven grids and a blended overlap; with the exact context the CPU result is the same
  // arithmetic per pixel (observed 0), the test allows 1e-6.
  for (const auto& [th, tw, overlap] :
       std::vector<std::array<int64_t, 3>>{{2, 3, 0}, {4, 5, 0}, {3, 7, 0}, {3, 4, 1}}) {
    const TilePlan p = plan_tiles(codec->tiling(), 6, 7, th, tw, overlap);
    EXPECT_LE(max_abs_diff(decode_tiles(*codec, latent, p), whole), 1e-6f) << describe(p);
  }
}
