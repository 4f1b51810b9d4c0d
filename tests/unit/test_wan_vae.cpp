// The Wan 2.1 VAE against golden outputs of the independent float64 PyTorch implementation
// in tests/fixtures/make_wan_vae_golden.py (itself checked against the official vae.py to
// 5e-15), plus the streaming properties (chunked == whole, causality), config detection,
// and the errors users see for wrong files and shapes.
//
// Tolerances: our CPU path is fp32 (convs accumulate in fp32 over up to 27*C terms, norms in
// double), the goldens float64. Observed max abs error: 1.7e-6 on the video (values in
// [-1, 1]), 3.6e-7 on mu (|mu| up to 1.2); the tests allow 1e-5 and 5e-6. Structural
// mistakes move outputs by 0.05 to 1; the smallest plausible slip, an RMS norm with eps
// inside the sqrt instead of Wan's clamped L2 norm, moves them by 3.3e-5 / 9.5e-6 and is
// still caught (see tests/fixtures/README.md).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/vae/wan_vae.h"
#include "models/vae/wan_vae_tiny.h"
#include "parallel/checkpoint_weights.h"
#include "sampling/noise.h"
#include "../part_loaders.h"

using namespace raylight;
using namespace raylight::test;

namespace {

std::string fixture(const std::string& name) { return std::string(RAYLIGHT_FIXTURE_DIR) + "/" + name; }

float max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return INFINITY;
  float m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.f32()[i] - b.f32()[i]));
  return m;
}

// Runs fn and returns the raylight::Error message it throws ("" when it does not throw).
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

// The fixture's weights as an editable in-memory store.
std::unique_ptr<MemoryWeights> fixture_weights() {
  auto f = SafetensorsFile::open(fixture("wan_vae_tiny.safetensors"));
  auto w = std::make_unique<MemoryWeights>();
  for (const auto& info : f->tensors()) w->put(info.name, f->tensor(info.name).to_f32().clone());
  return w;
}

class WanVaeTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> cpu = make_cpu_backend();
};

}  // namespace

TEST_F(WanVaeTest, DecodeMatchesReference) {
  auto vae = load_wan_vae(fixture("wan_vae_tiny.safetensors"), *cpu);
  auto c = SafetensorsFile::open(fixture("wan_vae_tiny_case.safetensors"));
  int calls = 0;
  Tensor video = vae->decode(c->tensor("latent").to_f32(), [&](int64_t done, int64_t total) {
    ++calls;
    EXPECT_EQ(total, 3);
    EXPECT_EQ(done, calls);
  });
  EXPECT_EQ(calls, 3);
  Tensor expected = c->tensor("video").to_f32();
  ASSERT_EQ(video.shape(), (Shape{3, 9, 32, 48}));
  const float err = max_abs_diff(video, expected);
  EXPECT_LT(err, 1e-5f);
  std::printf("[ info ] decode max abs error vs float64 golden: %.3g\n", err);
}

TEST_F(WanVaeTest, EncodeMatchesReference) {
  auto vae = load_wan_vae(fixture("wan_vae_tiny.safetensors"), *cpu);
  auto c = SafetensorsFile::open(fixture("wan_vae_tiny_case.safetensors"));
  Tensor mu = vae->encode(c->tensor("input_video").to_f32());
  ASSERT_EQ(mu.shape(), (Shape{16, 2, 2, 3}));
  const float err = max_abs_diff(mu, c->tensor("mu").to_f32());
  EXPECT_LT(err, 5e-6f);
  std::printf("[ info ] encode max abs error vs float64 golden: %.3g\n", err);
}

TEST_F(WanVaeTest, DetectsConfigFromShapes) {
  auto vae = load_wan_vae(fixture("wan_vae_tiny.safetensors"), *cpu);
  EXPECT_EQ(vae->config().base_dim, 4);
  EXPECT_EQ(vae->config().z_dim, 16);
  EXPECT_TRUE(vae->config().has_encoder);
  auto tiny = load_wan_vae("tiny", *cpu);
  EXPECT_EQ(tiny->config().base_dim, 8);
  // The released model's tensor list: 194 tensors, decoder.conv1 [384, 16, 3, 3, 3].
  WanVaeConfig full;
  auto names = wan_vae_expected_tensors(full);
  EXPECT_EQ(names.size(), 194u);
  bool found = false;
  for (const auto& [n, s] : names)
    if (n == "decoder.conv1.weight") found = s == Shape{384, 16, 3, 3, 3};
  EXPECT_TRUE(found);
}

TEST_F(WanVaeTest, ChunkedDecodeEqualsWholeDecode) {
  auto vae = load_wan_vae("tiny", *cpu);
  Tensor latent = gaussian_noise({16, 4, 4, 6}, 42);
  Tensor official = vae->decode(latent);         // 1 latent frame per chunk
  Tensor pairs = vae->decode(latent, {}, 2);      // 1, 2, 1
  Tensor whole = vae->decode(latent, {}, 1000);   // 1, then the other 3 at once
  ASSERT_EQ(official.shape(), (Shape{3, 13, 32, 48}));
  EXPECT_EQ(max_abs_diff(official, whole), 0.0f);
  EXPECT_EQ(max_abs_diff(official, pairs), 0.0f);
}

TEST_F(WanVaeTest, ChunkedEncodeEqualsWholeEncode) {
  auto vae = load_wan_vae("tiny", *cpu);
  Tensor video = gaussian_noise({3, 9, 16, 16}, 43);
  Tensor official = vae->encode(video);
  Tensor whole = vae->encode(video, {}, 8);
  ASSERT_EQ(official.shape(), (Shape{16, 3, 2, 2}));
  EXPECT_EQ(max_abs_diff(official, whole), 0.0f);
}

TEST_F(WanVaeTest, DecodeIsCausalInTime) {
  auto vae = load_wan_vae(fixture("wan_vae_tiny.safetensors"), *cpu);
  auto c = SafetensorsFile::open(fixture("wan_vae_tiny_case.safetensors"));
  Tensor latent = c->tensor("latent").to_f32();  // [16, 3, 4, 6]
  Tensor first2 = Tensor::empty({16, 2, 4, 6});
  for (int64_t ch = 0; ch < 16; ++ch)
    std::copy(latent.f32() + ch * 3 * 24, latent.f32() + ch * 3 * 24 + 2 * 24, first2.f32() + ch * 2 * 24);
  Tensor part = vae->decode(first2), all = vae->decode(latent);
  ASSERT_EQ(part.shape(), (Shape{3, 5, 32, 48}));
  for (int64_t ch = 0; ch < 3; ++ch)
    for (int64_t i = 0; i < 5 * 32 * 48; ++i)
      ASSERT_EQ(part.f32()[ch * 5 * 32 * 48 + i], all.f32()[ch * 9 * 32 * 48 + i]);
}

// Speed is a benchmark's business; this checks the demo path decodes to sane pixels.
TEST_F(WanVaeTest, TinyDecodesTheDemoLatent) {
  auto vae = load_wan_vae("tiny", *cpu);
  Tensor latent = gaussian_noise({16, 3, 16, 16}, 7);
  Tensor video = vae->decode(latent);
  ASSERT_EQ(video.shape(), (Shape{3, 9, 128, 128}));
  int64_t clamped = 0;
  for (int64_t i = 0; i < video.numel(); ++i) {
    const float v = video.f32()[i];
    ASSERT_TRUE(std::isfinite(v) && v >= -1.0f && v <= 1.0f);
    clamped += std::fabs(v) == 1.0f;
  }
  EXPECT_LT(clamped, video.numel() / 10);
}

TEST_F(WanVaeTest, RefusesAFluxAutoencoderNamingTheTensor) {
  auto dir = std::filesystem::temp_directory_path() / ("raylight_vae_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "ae.safetensors").string();
  write_safetensors(path, {{"decoder.conv_in.weight", Tensor::zeros({512, 16, 3, 3})},
                           {"decoder.conv_in.bias", Tensor::zeros({512})},
                           {"encoder.down.0.block.0.conv1.weight", Tensor::zeros({128, 128, 3, 3})},
                           {"encoder.conv_in.weight", Tensor::zeros({128, 3, 3, 3})}});
  const std::string msg = error_of([&] { load_wan_vae(path, *cpu); });
  std::filesystem::remove_all(dir);
  EXPECT_TRUE(contains(msg, "not a Wan 2.1 VAE")) << msg;
  EXPECT_TRUE(contains(msg, "decoder.conv1.weight")) << msg;
  EXPECT_TRUE(contains(msg, "decoder.conv_in.weight")) << msg;
  EXPECT_TRUE(contains(msg, path)) << msg;
}

TEST_F(WanVaeTest, RefusesMismatchedOrMissingTensorsByName) {
  auto w = fixture_weights();
  w->put("decoder.upsamples.3.time_conv.weight", Tensor::zeros({16, 16, 3, 1, 1}));
  std::string msg = error_of([&] { WanVae::from_weights(std::move(w), *cpu, "edited.safetensors"); });
  EXPECT_TRUE(contains(msg, "decoder.upsamples.3.time_conv.weight")) << msg;
  EXPECT_TRUE(contains(msg, "[16, 16, 3, 1, 1]") && contains(msg, "[32, 16, 3, 1, 1]")) << msg;
  EXPECT_TRUE(contains(msg, "edited.safetensors is not a Wan 2.1 VAE")) << msg;

  auto dit = std::make_unique<MemoryWeights>();
  dit->put("patch_embedding.weight", Tensor::zeros({64, 16, 1, 2, 2}));
  msg = error_of([&] { WanVae::from_weights(std::move(dit), *cpu, "dit.safetensors"); });
  EXPECT_TRUE(contains(msg, "Wan DiT checkpoint")) << msg;

  // A Wan 2.2-style 48-channel latent is refused for its channel count.
  auto wide = std::make_unique<MemoryWeights>();
  wide->put("decoder.conv1.weight", Tensor::zeros({1024, 48, 3, 3, 3}));
  wide->put("decoder.head.2.weight", Tensor::zeros({12, 256, 3, 3, 3}));
  wide->put("conv2.weight", Tensor::zeros({48, 48, 1, 1, 1}));
  msg = error_of([&] { WanVae::from_weights(std::move(wide), *cpu, "wan2.2_vae.safetensors"); });
  EXPECT_TRUE(contains(msg, "48")) << msg;

  EXPECT_TRUE(contains(error_of([&] { load_wan_vae("/nonexistent/vae.safetensors", *cpu); }), "does not exist"));
}

TEST_F(WanVaeTest, DecoderOnlyWeightsDecodeButDoNotEncode) {
  auto w = fixture_weights();
  auto dec = std::make_unique<MemoryWeights>();
  for (const auto& [name, t] : w->tensors())
    if (name.rfind("encoder.", 0) != 0 && name.rfind("conv1.", 0) != 0) dec->put(name, t);
  auto vae = WanVae::from_weights(std::move(dec), *cpu);
  EXPECT_FALSE(vae->config().has_encoder);
  auto c = SafetensorsFile::open(fixture("wan_vae_tiny_case.safetensors"));
  EXPECT_LT(max_abs_diff(vae->decode(c->tensor("latent").to_f32()), c->tensor("video").to_f32()), 1e-5f);
  EXPECT_TRUE(contains(error_of([&] { vae->encode(c->tensor("input_video").to_f32()); }), "no encoder"));
}

TEST_F(WanVaeTest, ShapeErrorsAreClear) {
  auto vae = load_wan_vae("tiny", *cpu);
  std::string msg = error_of([&] { vae->decode(Tensor::zeros({4, 3, 8, 8})); });
  EXPECT_TRUE(contains(msg, "[4, 3, 8, 8]") && contains(msg, "expected [16, frames, height, width]")) << msg;
  EXPECT_FALSE(error_of([&] { vae->decode(Tensor::zeros({16, 8, 8})); }).empty());
  EXPECT_TRUE(contains(error_of([&] { vae->decode(Tensor::zeros({16, 1, 2, 2}), {}, 0); }), "frames_per_chunk"));
  msg = error_of([&] { vae->encode(Tensor::zeros({3, 6, 16, 16})); });
  EXPECT_TRUE(contains(msg, "1 + 4k")) << msg;
  EXPECT_FALSE(error_of([&] { vae->encode(Tensor::zeros({3, 5, 12, 16})); }).empty());
  EXPECT_FALSE(error_of([&] { vae->encode(Tensor::zeros({4, 5, 16, 16})); }).empty());
  EXPECT_TRUE(contains(error_of([&] { vae->encode(Tensor::zeros({3, 5, 16, 16}), {}, 6); }), "multiple of 4"));
}
