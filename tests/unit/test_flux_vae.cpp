// The Flux VAE against goldens of the independent float64 PyTorch implementation in
// tests/fixtures/make_flux_vae_golden.py (itself equal to diffusers' AutoencoderKL to 6e-15
// on the same weights), which rebuilds the embedded tiny weights from the documented noise
// generator; plus config detection, registry recognition and the errors users see.
//
// Tolerances: the CPU path is fp32 with double accumulation in the norms; the goldens are
// float64. Observed errors are printed; the tests allow 1e-5 (values are O(1)).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "backend/backend.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "models/vae/flux_vae_codec.h"
#include "models/vae/flux_vae_config.h"
#include "models/vae/flux_vae_net.h"
#include "models/vae/flux_vae_tiny.h"

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

class FluxVaeTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  std::shared_ptr<SafetensorsFile> golden = SafetensorsFile::open(fixture("flux_vae_tiny_case.safetensors"));
  std::unique_ptr<LatentCodec> codec() { return make_flux_vae_codec(flux_vae_tiny_weights(), *cpu, "tiny"); }
};

}  // namespace

TEST_F(FluxVaeTest, DecodeMatchesReference) {
  Tensor raw = golden->tensor("decoded_raw").to_f32();
  Tensor picture = codec()->decode(golden->tensor("latent").to_f32());
  ASSERT_EQ(picture.shape(), (Shape{3, 32, 48}));
  // The codec clamps to [-1, 1]: compare with the clamped golden, and check the golden is
  // mostly inside the range so the comparison sees the network, not the clamp.
  Tensor clamped = raw.clone();
  int64_t inside = 0;
  for (int64_t i = 0; i < clamped.numel(); ++i) {
    inside += std::fabs(clamped.f32()[i]) <= 1.0f;
    clamped.f32()[i] = std::clamp(clamped.f32()[i], -1.0f, 1.0f);
  }
  EXPECT_GT(inside, raw.numel() * 3 / 4);
  const float err = max_abs_diff(picture, clamped);
  EXPECT_LT(err, 1e-5f);
  std::printf("[ info ] decode max abs error vs float64 golden: %.3g\n", err);
}

TEST_F(FluxVaeTest, UnclampedDecoderMatchesReference) {
  auto w = flux_vae_tiny_weights();
  w->bind(*cpu);
  Tensor z = golden->tensor("latent").to_f32().clone();
  for (int64_t i = 0; i < z.numel(); ++i) z.f32()[i] = static_cast<float>(z.f32()[i] / kFluxVaeScale + kFluxVaeShift);
  Tensor y = flux_vae_decoder(*cpu, *w, flux_vae_tiny_config(), z.reshape({1, 16, 4, 6}));
  const float err = max_abs_diff(y.reshape({3, 32, 48}), golden->tensor("decoded_raw").to_f32());
  EXPECT_LT(err, 1e-5f);
  std::printf("[ info ] raw decoder max abs error: %.3g\n", err);
}

TEST_F(FluxVaeTest, EncodeMatchesReference) {
  Tensor latent = codec()->encode(golden->tensor("picture").to_f32());
  ASSERT_EQ(latent.shape(), (Shape{16, 4, 5}));
  const float err = max_abs_diff(latent, golden->tensor("latent_of_picture").to_f32());
  EXPECT_LT(err, 1e-5f);
  std::printf("[ info ] encode max abs error vs float64 golden: %.3g\n", err);
}

TEST_F(FluxVaeTest, DetectsConfigFromShapesAndIsRecognised) {
  auto w = flux_vae_tiny_weights();
  FluxVaeConfig c = detect_flux_vae_config(*w, "tiny");
  EXPECT_EQ(c.ch, 32);
  EXPECT_EQ(c.ch_mult, (std::vector<int64_t>{1, 1, 2, 2}));
  EXPECT_EQ(c.num_res_blocks, 2);
  EXPECT_EQ(c.z_channels, 16);
  EXPECT_TRUE(c.has_encoder);
  EXPECT_EQ(c.downscale(), 8);
  auto r = recognise(*w, "ae.safetensors");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->part, PartKind::LatentCodec);
  EXPECT_EQ(r->variant, "Flux VAE (base width 32, 16 latent channels)");
  // The released shapes: 128 base, 1/2/4/4, 2 blocks; the full list has the official names.
  FluxVaeConfig released;
  bool has_shortcut = false, has_upsample = false;
  for (const auto& [name, shape] : flux_vae_expected_tensors(released)) {
    has_shortcut |= name == "encoder.down.1.block.0.nin_shortcut.weight" && shape == Shape{256, 128, 1, 1};
    has_upsample |= name == "decoder.up.3.upsample.conv.weight" && shape == Shape{512, 512, 3, 3};
  }
  EXPECT_TRUE(has_shortcut);
  EXPECT_TRUE(has_upsample);
}

TEST_F(FluxVaeTest, RefusesMismatchedOrMissingTensorsByName) {
  auto w = flux_vae_tiny_weights();
  w->put("decoder.up.2.block.1.conv2.weight", Tensor::zeros({64, 64, 3, 1}));
  std::string msg = error_of([&] { make_flux_vae_codec(std::move(w), *cpu, "edited.safetensors"); });
  EXPECT_TRUE(contains(msg, "edited.safetensors is not a Flux VAE")) << msg;
  EXPECT_TRUE(contains(msg, "decoder.up.2.block.1.conv2.weight")) << msg;
  EXPECT_TRUE(contains(msg, "[64, 64, 3, 1]") && contains(msg, "[64, 64, 3, 3]")) << msg;

  auto wan = std::make_unique<MemoryWeights>();
  wan->put("decoder.conv1.weight", Tensor::zeros({32, 16, 3, 3, 3}));
  wan->put("conv2.weight", Tensor::zeros({16, 16, 1, 1, 1}));
  msg = error_of([&] { make_flux_vae_codec(std::move(wan), *cpu, "wan_2.1_vae.safetensors"); });
  EXPECT_TRUE(contains(msg, "decoder.conv_in.weight") && contains(msg, "Wan 2.1 video VAE")) << msg;

  // A Wan VAE asked for as a codec goes to the Wan family; a Flux VAE is not a DiT.
  auto tiny = flux_vae_tiny_weights();
  msg = error_of([&] { denoiser_spec(*tiny, "ae.safetensors"); });
  EXPECT_TRUE(contains(msg, "Flux VAE")) << msg;
}

TEST_F(FluxVaeTest, DecoderOnlyWeightsDecodeButDoNotEncode) {
  auto w = flux_vae_tiny_weights();
  w->bind(*cpu);
  auto dec = std::make_unique<MemoryWeights>();
  for (const auto& n : w->names())
    if (n.rfind("decoder.", 0) == 0) dec->put(n, w->get(n));
  auto c = make_flux_vae_codec(std::move(dec), *cpu, "decoder.safetensors");
  EXPECT_TRUE(contains(c->variant(), "decoder only"));
  EXPECT_LT(max_abs_diff(c->decode(golden->tensor("latent").to_f32()), codec()->decode(golden->tensor("latent").to_f32())),
            1e-7f);
  EXPECT_TRUE(contains(error_of([&] { c->encode(golden->tensor("picture").to_f32()); }), "no encoder"));
}

TEST_F(FluxVaeTest, ShapeAndValueErrorsAreClear) {
  auto c = codec();
  std::string msg = error_of([&] { c->decode(Tensor::zeros({4, 4, 4})); });
  EXPECT_TRUE(contains(msg, "[4, 4, 4]") && contains(msg, "16 latent channels")) << msg;
  msg = error_of([&] { c->encode(Tensor::zeros({3, 30, 32})); });
  EXPECT_TRUE(contains(msg, "multiples of 8")) << msg;
  Tensor nan = Tensor::zeros({16, 2, 2});
  nan.f32()[3] = NAN;
  msg = error_of([&] { c->decode(nan); });
  EXPECT_FALSE(msg.empty());
  // A video latent with one frame [C, 1, h, w] is an image.
  EXPECT_EQ(c->decode(Tensor::zeros({16, 1, 2, 3})).shape(), (Shape{3, 16, 24}));
}
