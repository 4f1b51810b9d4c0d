// The Wan DiT forward against golden outputs from the independent float64 PyTorch
// implementation in tests/fixtures/make_wan_golden.py (itself checked against the official
// model code). Our CPU path computes in fp32, so the tolerance is fp32 accumulation error
// over two blocks: 5e-5 absolute on outputs of magnitude ~4. Smaller bugs (erf vs tanh GELU,
// a wrong eps) move outputs by >= 1e-4, so this tolerance catches them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "io/safetensors.h"
#include "pipeline/model_loader.h"
#include "../wan_cases.h"
#include "../part_loaders.h"

using namespace raylight;
using namespace raylight::test;

namespace {

void expect_golden(const std::string& model_file, const std::string& case_file) {
  LoadedModel wan = load_model(fixture(model_file));
  auto c = SafetensorsFile::open(fixture(case_file));
  Tensor v = wan_of(wan).forward(wan_case_inputs(*c));
  Tensor expected = c->tensor("velocity").to_f32();
  ASSERT_EQ(v.shape(), expected.shape());
  EXPECT_LT(max_abs_diff(v, expected), 5e-5f) << model_file;
}

}  // namespace

TEST(WanGolden, TextToVideoMatchesReference) {
  expect_golden("wan_tiny_t2v.safetensors", "wan_tiny_t2v_case.safetensors");
}

TEST(WanGolden, ImageToVideoMatchesReference) {
  expect_golden("wan_tiny_i2v.safetensors", "wan_tiny_i2v_case.safetensors");
}

TEST(WanGolden, ComfyScaledFp8MatchesDequantisedReference) {
  expect_golden("wan_tiny_t2v_scaled_fp8.safetensors", "wan_tiny_t2v_scaled_fp8_case.safetensors");
}

TEST(WanGolden, DetectsTinyConfigsFromShapes) {
  LoadedModel t2v = load_model(fixture("wan_tiny_t2v.safetensors"));
  EXPECT_EQ(wan_of(t2v).config().dim, 64);
  EXPECT_EQ(wan_of(t2v).config().num_heads, 2);
  EXPECT_EQ(wan_of(t2v).config().num_layers, 2);
  EXPECT_EQ(wan_of(t2v).config().text_dim, 32);
  EXPECT_FALSE(wan_of(t2v).config().image_to_video());
  LoadedModel i2v = load_model(fixture("wan_tiny_i2v.safetensors"));
  EXPECT_EQ(wan_of(i2v).config().in_dim, 36);
  EXPECT_EQ(wan_of(i2v).config().clip_dim, 48);
  EXPECT_TRUE(wan_of(i2v).config().image_to_video());
}

TEST(WanGolden, ForwardCommandWritesTheReferenceVelocity) {
  auto dir = std::filesystem::temp_directory_path() / ("raylight_fwd_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto c = SafetensorsFile::open(fixture("wan_tiny_t2v_case.safetensors"));
  write_safetensors((dir / "latent.safetensors").string(), {{"latent", c->tensor("latent")}});
  write_safetensors((dir / "context.safetensors").string(), {{"context", c->tensor("context")}});
  std::string cmd = std::string(RAYLIGHT_BINARY) + " forward --model " +
                    fixture("wan_tiny_t2v.safetensors") + " --latent " +
                    (dir / "latent.safetensors").string() + " --context " +
                    (dir / "context.safetensors").string() + " --timestep 700 --out " +
                    (dir / "v.safetensors").string() + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto out = SafetensorsFile::open((dir / "v.safetensors").string());
  EXPECT_LT(max_abs_diff(out->tensor("velocity").to_f32(), c->tensor("velocity").to_f32()), 5e-5f);
  std::filesystem::remove_all(dir);
}

// `forward --dump DIR`: the named intermediates of every block (filtered by --dump-names),
// each the rows the model holds ([tokens, dim] for the residual stream), and the velocity
// unchanged by dumping.
TEST(WanGolden, ForwardDumpWritesNamedIntermediatesAndLeavesTheResultAlone) {
  auto dir = std::filesystem::temp_directory_path() / ("raylight_dump_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto c = SafetensorsFile::open(fixture("wan_tiny_t2v_case.safetensors"));
  write_safetensors((dir / "latent.safetensors").string(), {{"latent", c->tensor("latent")}});
  write_safetensors((dir / "context.safetensors").string(), {{"context", c->tensor("context")}});
  const std::string base = std::string(RAYLIGHT_BINARY) + " forward --model " + fixture("wan_tiny_t2v.safetensors") +
                           " --latent " + (dir / "latent.safetensors").string() + " --context " +
                           (dir / "context.safetensors").string() + " --timestep 700";
  const std::string plain = base + " --out " + (dir / "v.safetensors").string() + " 2>/dev/null";
  const std::string dumped = base + " --out " + (dir / "v_dump.safetensors").string() + " --dump " +
                             (dir / "d").string() + " --dump-names x,head 2>/dev/null";
  ASSERT_EQ(std::system(plain.c_str()), 0) << plain;
  ASSERT_EQ(std::system(dumped.c_str()), 0) << dumped;
  EXPECT_EQ(max_abs_diff(SafetensorsFile::open((dir / "v_dump.safetensors").string())->tensor("velocity").to_f32(),
                         SafetensorsFile::open((dir / "v.safetensors").string())->tensor("velocity").to_f32()),
            0.0f);

  LoadedModel wan = load_model(fixture("wan_tiny_t2v.safetensors"));
  const WanConfig& cfg = wan_of(wan).config();
  const Shape latent = c->tensor("latent").shape();
  const int64_t tokens = latent[1] * (latent[2] / 2) * (latent[3] / 2);
  for (int layer = -1; layer < cfg.num_layers; ++layer) {
    const auto file = dir / "d" / (layer < 0 ? std::string("x.safetensors") : "x." + std::to_string(layer) + ".safetensors");
    ASSERT_TRUE(std::filesystem::exists(file)) << file;
    EXPECT_EQ(SafetensorsFile::open(file.string())->tensor("x").shape(), (Shape{tokens, cfg.dim})) << file;
  }
  EXPECT_EQ(SafetensorsFile::open((dir / "d" / "head.safetensors").string())->tensor("head").shape(),
            (Shape{tokens, cfg.out_dim * 4}));
  EXPECT_FALSE(std::filesystem::exists(dir / "d" / "ffn.0.safetensors")) << "--dump-names did not filter";
  // The blocks change the stream: a dump that repeated one tensor would pass the shapes.
  EXPECT_GT(max_abs_diff(SafetensorsFile::open((dir / "d" / "x.0.safetensors").string())->tensor("x").to_f32(),
                         SafetensorsFile::open((dir / "d" / "x.safetensors").string())->tensor("x").to_f32()),
            0.0f);
  // A file where the folder should be is refused by name, nothing written.
  const std::string onto_file = base + " --out " + (dir / "v2.safetensors").string() + " --dump " +
                                (dir / "v.safetensors").string() + " 2>/dev/null";
  EXPECT_NE(std::system(onto_file.c_str()), 0);
  EXPECT_FALSE(std::filesystem::exists(dir / "v2.safetensors"));
  std::filesystem::remove_all(dir);
}
