// The umT5 encoder against goldens from tests/fixtures/make_umt5_golden.py: a pure float64
// forward of the tiny encoder (which the script checks against HF transformers'
// UMT5EncoderModel, ~5e-7 apart) on three prompts of 14, 127 and 291 tokens, the last past
// max_distance 128 so every bucket kind is used. We compute in fp32, so the tolerance is fp32
// rounding over two layers: 2e-5 absolute on outputs up to ~4 (we measure <= 1.6e-6). The
// smallest mistake the script measures, erf GELU instead of tanh GELU, moves the output by
// >= 5e-4; a 1/sqrt(d) score scale, a shared or unidirectional position bias by >= 0.5.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "models/t5/umt5_attention.h"
#include "models/t5/umt5_encoder.h"
#include "models/t5/umt5_tiny.h"
#include "models/wan/wan_tiny.h"
#include "../part_loaders.h"

using namespace raylight;
using namespace raylight::test;

namespace {

constexpr float kTolerance = 2e-5f;

std::string fixture(const std::string& name) {
  return std::string(RAYLIGHT_FIXTURE_DIR) + "/" + name;
}

float max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return INFINITY;
  float m = 0;
  const float *pa = a.f32(), *pb = b.f32();
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(pa[i] - pb[i]));
  return m;
}

std::vector<int> ids_of(const Tensor& t) {
  const int32_t* p = t.data<int32_t>();
  return std::vector<int>(p, p + t.numel());
}

// The fp32 fixture as an in-memory store, with names rewritten by `rename`.
template <typename F>
std::unique_ptr<MemoryWeights> fixture_weights(F&& rename) {
  auto f = SafetensorsFile::open(fixture("umt5_tiny.safetensors"));
  auto w = std::make_unique<MemoryWeights>();
  for (const TensorInfo& t : f->tensors())
    w->put(rename(t.name), f->tensor(t.name).to_f32().clone());
  return w;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

// HF names -> the official Wan T5 names.
std::string wan_name(const std::string& hf) {
  std::string s = hf;
  if (s == "shared.weight") return "token_embedding.weight";
  if (s == "encoder.final_layer_norm.weight") return "norm.weight";
  s = replace_all(s, "encoder.block.", "blocks.");
  s = replace_all(s, "layer.0.SelfAttention.relative_attention_bias.weight",
                  "pos_embedding.embedding.weight");
  s = replace_all(s, "layer.0.SelfAttention.", "attn.");
  s = replace_all(s, "layer.0.layer_norm.", "norm1.");
  s = replace_all(s, "layer.1.DenseReluDense.wi_0.", "ffn.gate.0.");
  s = replace_all(s, "layer.1.DenseReluDense.wi_1.", "ffn.fc1.");
  s = replace_all(s, "layer.1.DenseReluDense.wo.", "ffn.fc2.");
  s = replace_all(s, "layer.1.layer_norm.", "norm2.");
  return s;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_golden(const std::string& model_file, const std::string& out_prefix) {
  auto backend = make_cpu_backend();
  auto enc = load_umt5(fixture(model_file), *backend);
  auto c = SafetensorsFile::open(fixture("umt5_tiny_case.safetensors"));
  for (int n = 0; n < 3; ++n) {
    const std::vector<int> ids = ids_of(c->tensor("ids_" + std::to_string(n)));
    Tensor out = enc->encode(ids);
    Tensor expected = c->tensor(out_prefix + std::to_string(n)).to_f32();
    ASSERT_EQ(out.shape(), (Shape{static_cast<int64_t>(ids.size()), 64}));
    EXPECT_LT(max_abs_diff(out, expected), kTolerance) << model_file << " case " << n;
  }
}

}  // namespace

TEST(UMT5Attention, BucketsMatchTorchForEveryOffsetUpTo1000) {
  auto c = SafetensorsFile::open(fixture("umt5_tiny_case.safetensors"));
  const std::vector<int> rel = ids_of(c->tensor("bucket_rel"));
  const std::vector<int> expected = ids_of(c->tensor("bucket"));
  ASSERT_EQ(rel.size(), expected.size());
  for (size_t i = 0; i < rel.size(); ++i)
    ASSERT_EQ(umt5_relative_bucket(rel[i], 32, 128), expected[i]) << "relative position " << rel[i];
}

TEST(UMT5Config, DetectsTheTinyConfigFromShapes) {
  auto backend = make_cpu_backend();
  auto enc = load_umt5(fixture("umt5_tiny.safetensors"), *backend);
  const UMT5Config& c = enc->config();
  EXPECT_EQ(c.vocab, 500);
  EXPECT_EQ(c.d_model, 64);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.d_kv, 16);
  EXPECT_EQ(c.d_ff, 96);
  EXPECT_EQ(c.num_buckets, 32);
  EXPECT_EQ(c.variant(), "umT5 custom (d_model 64, 2 layers)");
  EXPECT_EQ(c.names.embedding, "shared.weight");
  EXPECT_FALSE(enc->has_tokenizer());
}

TEST(UMT5Encoder, MatchesGoldenFp32) { expect_golden("umt5_tiny.safetensors", "out_"); }

TEST(UMT5Encoder, ComfyScaledFp8MatchesDequantisedGolden) {
  expect_golden("umt5_tiny_scaled_fp8.safetensors", "out_fp8_");
}

TEST(UMT5Encoder, EncodesPromptsWithTheTokenizerInsideTheFile) {
  auto backend = make_cpu_backend();
  auto enc = load_umt5(fixture("umt5_tiny_scaled_fp8.safetensors"), *backend);
  ASSERT_TRUE(enc->has_tokenizer());
  auto c = SafetensorsFile::open(fixture("umt5_tiny_case.safetensors"));
  EXPECT_EQ(enc->tokenizer().encode("a cat walking on the beach at sunset"),
            ids_of(c->tensor("ids_0")));
  Tensor out = enc->encode_prompt("a cat walking on the beach at sunset");
  EXPECT_LT(max_abs_diff(out, c->tensor("out_fp8_0").to_f32()), kTolerance);

  // A file without one needs a .model; the error says so.
  auto bare = load_umt5(fixture("umt5_tiny.safetensors"), *backend);
  const std::string e = error_of([&] { bare->encode_prompt("a cat"); });
  EXPECT_NE(e.find("no tokenizer"), std::string::npos) << e;
  auto with = load_umt5(fixture("umt5_tiny.safetensors"), *backend,
                                fixture("umt5_tiny_spiece.model"));
  EXPECT_LT(max_abs_diff(with->encode_prompt("a cat walking on the beach at sunset"),
                         c->tensor("out_0").to_f32()),
            kTolerance);
}

TEST(UMT5Encoder, OtherKeyLayoutsGiveIdenticalOutputs) {
  auto backend = make_cpu_backend();
  auto c = SafetensorsFile::open(fixture("umt5_tiny_case.safetensors"));
  const std::vector<int> ids = ids_of(c->tensor("ids_1"));
  UMT5Encoder hf(fixture_weights([](const std::string& n) { return n; }), *backend);
  const Tensor reference = hf.encode(ids);
  EXPECT_LT(max_abs_diff(reference, c->tensor("out_1").to_f32()), kTolerance);

  UMT5Encoder embed_tokens(
      fixture_weights([](const std::string& n) {
        return n == "shared.weight" ? std::string("encoder.embed_tokens.weight") : n;
      }),
      *backend);
  EXPECT_EQ(embed_tokens.config().names.embedding, "encoder.embed_tokens.weight");
  EXPECT_EQ(max_abs_diff(embed_tokens.encode(ids), reference), 0.0f);

  UMT5Encoder prefixed(fixture_weights([](const std::string& n) {
                         return "text_encoders.umt5xxl.transformer." + n;
                       }),
                       *backend);
  EXPECT_EQ(prefixed.config().names.prefix, "text_encoders.umt5xxl.transformer.");
  EXPECT_EQ(max_abs_diff(prefixed.encode(ids), reference), 0.0f);

  UMT5Encoder wan(fixture_weights(wan_name), *backend);
  EXPECT_EQ(wan.config().names.layout, UMT5Names::Layout::Wan);
  EXPECT_EQ(wan.config().num_layers, 2);
  EXPECT_EQ(max_abs_diff(wan.encode(ids), reference), 0.0f);
}

TEST(UMT5Encoder, InconsistentCheckpointsGiveErrorsNamingFileAndTensor) {
  auto backend = make_cpu_backend();
  const std::string q1 = "encoder.block.1.layer.0.SelfAttention.q.weight";
  auto bad_shape = fixture_weights([](const std::string& n) { return n; });
  bad_shape->put(q1, Tensor::zeros({64, 32}));
  std::string e = error_of([&] { UMT5Encoder(std::move(bad_shape), *backend); });
  EXPECT_NE(e.find(q1), std::string::npos) << e;
  EXPECT_NE(e.find("[64, 32]"), std::string::npos) << e;

  // Written to a file: the message names the file too.
  auto dir =
      std::filesystem::temp_directory_path() / ("raylight_umt5_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "bad.safetensors").string();
  auto f = SafetensorsFile::open(fixture("umt5_tiny.safetensors"));
  const std::string wo0 = "encoder.block.0.layer.1.DenseReluDense.wo.weight";
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const TensorInfo& t : f->tensors())
    tensors.push_back({t.name, t.name == wo0 ? Tensor::zeros({64, 95}) : f->tensor(t.name)});
  write_safetensors(path, tensors);
  e = error_of([&] { load_umt5(path, *backend); });
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find(wo0), std::string::npos) << e;

  // Without layer 1's position bias the file is read as T5 v1.1 (layer 0's bias shared;
  // tests/unit/test_t5.cpp checks it against transformers), not refused.
  auto t5 = fixture_weights([](const std::string& n) { return n; });
  MemoryWeights no_bias;
  for (const auto& [name, t] : t5->tensors())
    if (name != "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight")
      no_bias.put(name, t);
  EXPECT_TRUE(UMT5Encoder(std::make_unique<MemoryWeights>(no_bias), *backend).config().shared_position_bias);

  // Not an encoder at all, and a missing file.
  e = error_of([&] { load_umt5(fixture("wan_tiny_t2v.safetensors"), *backend); });
  EXPECT_NE(e.find("not a umT5 encoder"), std::string::npos) << e;
  EXPECT_NE(e.find("wan_tiny_t2v.safetensors"), std::string::npos) << e;
  const std::string missing = (dir / "missing.safetensors").string();
  e = error_of([&] { load_umt5(missing, *backend); });
  EXPECT_NE(e.find(missing), std::string::npos) << e;
  std::filesystem::remove_all(dir);
}

TEST(UMT5Encoder, RejectsIdsOutsideTheVocabulary) {
  auto backend = make_cpu_backend();
  auto enc = load_umt5(fixture("umt5_tiny.safetensors"), *backend);
  EXPECT_NE(error_of([&] {
              enc->encode({5, 500, 1});
            }).find("token id 500 at position 1"),
            std::string::npos);
  EXPECT_NE(error_of([&] { enc->encode({-1}); }).find("outside the vocabulary"), std::string::npos);
  EXPECT_NE(error_of([&] { enc->encode({}); }).find("no token ids"), std::string::npos);
}

TEST(UMT5Tiny, EncodesPromptsWithoutFilesAtTheDiTsTextWidth) {
  auto backend = make_cpu_backend();
  auto enc = load_umt5("tiny", *backend);
  ASSERT_TRUE(enc->has_tokenizer());
  EXPECT_EQ(enc->config().d_model, wan_tiny_config().text_dim);
  EXPECT_EQ(enc->config().vocab, enc->tokenizer().vocab_size());
  EXPECT_EQ(enc->config().vocab, umt5_tiny_config().vocab);
  Tensor a = enc->encode_prompt("a cat walking on the beach at sunset");
  ASSERT_EQ(a.shape(), (Shape{14, 64}));
  double sum_sq = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    ASSERT_TRUE(std::isfinite(a.f32()[i]));
    sum_sq += a.f32()[i] * a.f32()[i];
  }
  EXPECT_GT(sum_sq / a.numel(), 0.1);  // O(1) activations after the final norm
  EXPECT_EQ(max_abs_diff(a, load_umt5("tiny", *backend)
                                ->encode_prompt("a cat walking on the beach at sunset")),
            0.0f);
  // One token changed changes every row (attention mixes them).
  std::vector<int> ids = enc->tokenizer().encode("a cat walking on the beach at sunset");
  ids[1] = ids[1] + 1;
  Tensor b = enc->encode(ids);
  for (int64_t row : {int64_t{0}, a.dim(0) - 1})
    EXPECT_GT(max_abs_diff(a.slice_rows(row, row + 1), b.slice_rows(row, row + 1)), 1e-3f) << row;
}
