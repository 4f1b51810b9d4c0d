// Variant detection from tensor shapes, and refusal of checkpoints that do not fit.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/wan/wan_config.h"
#include "models/wan/wan_tiny.h"
#include "pipeline/model_loader.h"
#include "../part_loaders.h"
#include "../error_of.h"

using namespace raylight;
using namespace raylight::test;

TEST(WanConfig, RealVariantsAreNamedAndCounted) {
  WanConfig c;
  c.dim = 1536; c.num_heads = 12; c.ffn_dim = 8960; c.num_layers = 30;
  EXPECT_EQ(c.variant(), "Wan2.1 T2V 1.3B");
  EXPECT_NEAR(c.parameter_count() / 1e9, 1.42, 0.02);  // the released file has 1.42e9
  c.dim = 5120; c.num_heads = 40; c.ffn_dim = 13824; c.num_layers = 40;
  EXPECT_EQ(c.variant(), "Wan2.1 T2V 14B");
  EXPECT_NEAR(c.parameter_count() / 1e9, 14.29, 0.05);
  c.in_dim = 36; c.clip_dim = 1280;
  EXPECT_EQ(c.variant(), "Wan2.1 I2V 14B");
  EXPECT_GT(c.parameter_count(), 14.29e9);
}

TEST(WanConfig, TinyWeightsDetectBackToTheirConfig) {
  auto w = wan_tiny_weights();
  WanConfig c = detect_wan_config(*w);
  WanConfig t = wan_tiny_config();
  EXPECT_EQ(c.dim, t.dim);
  EXPECT_EQ(c.num_heads, t.num_heads);
  EXPECT_EQ(c.ffn_dim, t.ffn_dim);
  EXPECT_EQ(c.num_layers, t.num_layers);
  EXPECT_EQ(c.text_dim, t.text_dim);
}

TEST(WanConfig, InconsistentCheckpointNamesTheTensor) {
  auto w = wan_tiny_weights();
  w->put("blocks.1.ffn.2.weight", Tensor::zeros({128, 100}));
  std::string msg = error_of([&] { detect_wan_config(*w); });
  EXPECT_NE(msg.find("blocks.1.ffn.2.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[128, 256]"), std::string::npos) << msg;

  auto missing = std::make_unique<MemoryWeights>();
  auto full = wan_tiny_weights();
  for (const auto& [name, t] : full->tensors())
    if (name != "blocks.0.cross_attn.norm_k.weight") missing->put(name, t);
  missing->set_metadata({{"raylight.num_heads", "2"}});
  msg = error_of([&] { detect_wan_config(*missing); });
  EXPECT_NE(msg.find("blocks.0.cross_attn.norm_k.weight"), std::string::npos) << msg;

  auto bad_heads = wan_tiny_weights();
  bad_heads->set_metadata({{"raylight.num_heads", "3"}});
  msg = error_of([&] { detect_wan_config(*bad_heads); });
  EXPECT_NE(msg.find("3 heads"), std::string::npos) << msg;
}

TEST(WanConfig, LoaderRefusesFilesThatAreNotWan) {
  auto dir = std::filesystem::temp_directory_path() / ("raylight_cfg_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "other.safetensors").string();
  write_safetensors(path, {{"encoder.layer.0.weight", Tensor::zeros({4, 4})}});
  std::string msg = error_of([&] { load_model(path); });
  EXPECT_NE(msg.find("is not a DiT this build knows"), std::string::npos) << msg;
  msg = error_of([&] { load_model((dir / "absent.safetensors").string()); });
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
  std::filesystem::remove_all(dir);
}
