// Tests for Checkpoint: small files written with write_safetensors in the layouts ComfyUI
// produces (prefixed full checkpoints, scaled fp8 with either scale name, plain fp8, bf16),
// checked value by value against the dtype conversions in core/dtype.h.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/checkpoint.h"

namespace fs = std::filesystem;
using namespace raylight;

namespace {

struct TempDir {
  fs::path dir;
  TempDir() {
    static int counter = 0;
    std::random_device rd;
    dir = fs::temp_directory_path() /
          ("raylight-ckpt-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
           std::to_string(rd()));
    fs::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string file(const std::string& name) const { return (dir / name).string(); }
};

Tensor f32(Shape shape, std::vector<float> v) { return Tensor::from_vector(std::move(shape), v); }

Tensor e4m3_codes(Shape shape, const std::vector<float>& values) {
  Tensor t = Tensor::empty(std::move(shape), DType::F8E4M3);
  for (size_t i = 0; i < values.size(); ++i) t.data<uint8_t>()[i] = f32_to_e4m3(values[i]);
  return t;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

const std::vector<float> kVals = {1.0f, -2.5f, 0.375f, 448.0f, -0.0f, 3.0e-3f};

}  // namespace

TEST(Checkpoint, StripsComfyPrefixAndIgnoresOtherModels) {
  TempDir tmp;
  const std::string path = tmp.file("full.safetensors");
  write_safetensors(path, {{"model.diffusion_model.blocks.0.q.weight", f32({2, 2}, {1, 2, 3, 4})},
                           {"model.diffusion_model.head.bias", f32({2}, {5, 6})},
                           {"first_stage_model.decoder.conv.weight", f32({1}, {9})},
                           {"cond_stage_model.t.weight", f32({1}, {8})}});
  Checkpoint ck = Checkpoint::open(path);
  EXPECT_EQ(ck.prefix(), "model.diffusion_model.");
  EXPECT_EQ(sorted(ck.names()), (std::vector<std::string>{"blocks.0.q.weight", "head.bias"}));
  EXPECT_TRUE(ck.has("head.bias"));
  EXPECT_FALSE(ck.has("model.diffusion_model.head.bias"));
  EXPECT_FALSE(ck.has("first_stage_model.decoder.conv.weight"));
  EXPECT_FALSE(ck.scaled_fp8());
  EXPECT_EQ(ck.info("blocks.0.q.weight").name, "model.diffusion_model.blocks.0.q.weight");
  Tensor w = ck.weight_f32("blocks.0.q.weight");
  EXPECT_EQ(w.shape(), (Shape{2, 2}));
  EXPECT_EQ(w.f32()[3], 4.0f);
  EXPECT_EQ(ck.stored("head.bias").f32()[1], 6.0f);
  EXPECT_EQ(&ck.file(), ck.file().shared_from_this().get());
}

TEST(Checkpoint, NoPrefixKeepsNames) {
  TempDir tmp;
  const std::string path = tmp.file("plain.safetensors");
  write_safetensors(path, {{"a.weight", f32({1}, {1})}, {"b.bias", f32({1}, {2})}});
  Checkpoint ck(SafetensorsFile::open(path));
  EXPECT_EQ(ck.prefix(), "");
  EXPECT_EQ(sorted(ck.names()), (std::vector<std::string>{"a.weight", "b.bias"}));
}

TEST(Checkpoint, ScaledFp8Dequantises) {
  for (const std::string prefix : {"", "model.diffusion_model."}) {
    TempDir tmp;
    const std::string path = tmp.file("scaled.safetensors");
    Tensor codes = e4m3_codes({2, 3}, kVals);
    Tensor codes2 = e4m3_codes({3, 2}, kVals);
    write_safetensors(path, {{prefix + "scaled_fp8", Tensor::empty({0}, DType::F8E4M3)},
                             {prefix + "blk.weight", codes},
                             {prefix + "blk.scale_weight", f32({}, {0.5f})},
                             {prefix + "blk.scale_input", f32({1}, {2.0f})},
                             {prefix + "blk.bias", f32({2}, {1, 2}).to_dtype(DType::BF16)},
                             {prefix + "new.weight", codes2},
                             {prefix + "new.weight_scale", f32({1}, {0.25f}).to_dtype(DType::BF16)}});
    Checkpoint ck = Checkpoint::open(path);
    EXPECT_EQ(ck.prefix(), prefix);
    EXPECT_TRUE(ck.scaled_fp8());
    EXPECT_EQ(sorted(ck.names()), (std::vector<std::string>{"blk.bias", "blk.weight", "new.weight"}));
    EXPECT_EQ(ck.info("blk.weight").dtype, DType::F8E4M3);
    EXPECT_EQ(ck.stored("blk.weight").dtype(), DType::F8E4M3);
    EXPECT_TRUE(ck.has("blk.scale_weight"));

    Tensor w = ck.weight_f32("blk.weight");
    ASSERT_EQ(w.dtype(), DType::F32);
    EXPECT_EQ(w.shape(), (Shape{2, 3}));
    Tensor w2 = ck.weight_f32("new.weight");
    EXPECT_EQ(w2.shape(), (Shape{3, 2}));
    for (size_t i = 0; i < kVals.size(); ++i) {
      EXPECT_EQ(w.f32()[i], e4m3_to_f32(codes.data<uint8_t>()[i]) * 0.5f) << i;
      EXPECT_EQ(w2.f32()[i], e4m3_to_f32(codes2.data<uint8_t>()[i]) * 0.25f) << i;
    }
    EXPECT_EQ(ck.input_scale("blk.weight"), std::optional<float>(2.0f));
    EXPECT_EQ(ck.input_scale("blk"), std::optional<float>(2.0f));
    EXPECT_EQ(ck.input_scale("new.weight"), std::nullopt);
    Tensor bias = ck.weight_f32("blk.bias");
    EXPECT_EQ(bias.f32()[0], 1.0f);
    EXPECT_EQ(bias.f32()[1], 2.0f);
  }
}

TEST(Checkpoint, PlainFp8WithoutScales) {
  TempDir tmp;
  const std::string path = tmp.file("fp8.safetensors");
  Tensor codes = e4m3_codes({6}, kVals);
  write_safetensors(path, {{"l.weight", codes}});
  Checkpoint ck = Checkpoint::open(path);
  EXPECT_FALSE(ck.scaled_fp8());
  EXPECT_EQ(ck.input_scale("l.weight"), std::nullopt);
  Tensor w = ck.weight_f32("l.weight");
  for (size_t i = 0; i < kVals.size(); ++i)
    EXPECT_EQ(w.f32()[i], e4m3_to_f32(codes.data<uint8_t>()[i])) << i;
}

TEST(Checkpoint, Bf16WeightsConvert) {
  TempDir tmp;
  const std::string path = tmp.file("bf16.safetensors");
  Tensor b = f32({2, 2}, {1.0f, -3.140625f, 1e-3f, 65280.0f}).to_dtype(DType::BF16);
  write_safetensors(path, {{"l.weight", b}});
  Checkpoint ck = Checkpoint::open(path);
  EXPECT_EQ(ck.info("l.weight").dtype, DType::BF16);
  Tensor w = ck.weight_f32("l.weight");
  ASSERT_EQ(w.dtype(), DType::F32);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(w.f32()[i], bf16_to_f32(b.data<uint16_t>()[i])) << i;
}

TEST(Checkpoint, MissingNamesAndBadScales) {
  TempDir tmp;
  const std::string path = tmp.file("m.safetensors");
  write_safetensors(path, {{"model.diffusion_model.l.weight", e4m3_codes({2}, {1, 2})},
                           {"model.diffusion_model.l.scale_weight", f32({2}, {1, 2})}});
  Checkpoint ck = Checkpoint::open(path);
  const std::string want = "checkpoint " + path + ": no tensor named nope.weight";
  for (int which = 0; which < 3; ++which) {
    try {
      if (which == 0) ck.info("nope.weight");
      if (which == 1) ck.stored("nope.weight");
      if (which == 2) ck.weight_f32("nope.weight");
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), want);
    }
  }
  // A per-tensor scale must be a scalar.
  EXPECT_THROW(ck.weight_f32("l.weight"), Error);
}
