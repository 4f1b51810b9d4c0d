// The CLIP text tower against goldens from tests/fixtures/make_clip_golden.py: a float64
// forward (checked there against HF transformers' CLIPTextModel: 2e-7 apart, HF's softmax
// being fp32) of a tiny CLIP-L-shaped tower (width 32, 2 causal layers, quick_gelu, 16
// positions) stored in fp16. We compute in fp32: 1e-5 absolute on outputs up to ~3.4.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "models/clip/clip_text_encoder.h"
#include "models/clip/clip_text_model.h"
#include "models/clip/clip_tiny.h"
#include "models/registry.h"
#include "core/dtype.h"

using namespace raylight;

namespace {

constexpr float kTolerance = 1e-5f;

std::string fixture(const std::string& name) { return std::string(RAYLIGHT_FIXTURE_DIR) + "/" + name; }

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

// The fixture as an in-memory store, names given `prefix` in front.
std::unique_ptr<MemoryWeights> fixture_weights(const std::string& prefix = "") {
  auto f = SafetensorsFile::open(fixture("clip_text_tiny.safetensors"));
  auto w = std::make_unique<MemoryWeights>();
  for (const TensorInfo& t : f->tensors()) w->put(prefix + t.name, f->tensor(t.name).to_f32().clone());
  w->set_metadata({{"raylight.clip_heads", "4"}});
  return w;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}


int tiny_eos() { return ClipTokenizer::from_path(fixture("clip_tiny_tokenizer")).eos_id(); }

}  // namespace

TEST(ClipTextConfig, DetectsTheTinyConfigFromShapesAndMetadata) {
  auto w = fixture_weights();
  const ClipConfig c = detect_clip_config(*w, ClipTower::Text);
  EXPECT_EQ(c.width, 32);
  EXPECT_EQ(c.layers, 2);
  EXPECT_EQ(c.heads, 4);
  EXPECT_EQ(c.mlp, 64);
  EXPECT_EQ(c.positions, 16);
  EXPECT_EQ(c.vocab, 1024);
  EXPECT_TRUE(c.quick_gelu);
  EXPECT_EQ(c.prefix, "text_model.");
  EXPECT_EQ(c.variant(), "CLIP text custom (width 32, 2 layers)");
  // Without the metadata the heads are 64 wide: 32 is not a multiple of 64.
  w->set_metadata({});
  EXPECT_NE(error_of([&] { detect_clip_config(*w, ClipTower::Text); }).find("not a multiple of 64"),
            std::string::npos);
}

TEST(ClipTextModel, MatchesGoldenHiddenAndPooled) {
  auto backend = make_cpu_backend();
  ClipTextModel model(fixture_weights(), *backend);
  auto c = SafetensorsFile::open(fixture("clip_text_tiny_case.safetensors"));
  const int eos = tiny_eos();
  for (int n = 0; n < 3; ++n) {
    const std::string i = std::to_string(n);
    const ClipTextOutput out = model.encode(ids_of(c->tensor("ids_" + i)), eos);
    EXPECT_LT(max_abs_diff(out.hidden, c->tensor("hidden_" + i).to_f32()), kTolerance) << "case " << n;
    EXPECT_LT(max_abs_diff(out.pooled, c->tensor("pooled_" + i).to_f32()), kTolerance) << "case " << n;
  }
}

TEST(ClipTextEncoder, EncodesPromptsThroughTheRegistryWithAFolderTokenizer) {
  auto backend = make_cpu_backend();
  const std::string file = fixture("clip_text_tiny.safetensors");
  auto store = open_store(file, PartKind::TextEncoder);
  const auto r = recognise(*store, file);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->part, PartKind::TextEncoder);
  EXPECT_EQ(r->family, "CLIP");
  auto enc = make_text_encoder(std::move(store), *backend, file, fixture("clip_tiny_tokenizer"));
  ASSERT_EQ(enc->outputs().size(), 1u);
  EXPECT_EQ(enc->outputs()[0], (std::pair<std::string, int64_t>{"pooled", 32}));
  // Prompt 0 of the goldens, tokenized by HF at the tower's 16 positions.
  const Conditioning out = enc->encode("a photo of a cat");
  auto c = SafetensorsFile::open(fixture("clip_text_tiny_case.safetensors"));
  EXPECT_LT(max_abs_diff(out.at("pooled"), c->tensor("pooled_0").to_f32()), kTolerance);
  // Without a tokenizer the error names the file and what to give.
  const std::string e = error_of([&] { make_text_encoder(open_store(file, PartKind::TextEncoder), *backend, file); });
  EXPECT_NE(e.find(file), std::string::npos) << e;
  EXPECT_NE(e.find("sd1_tokenizer"), std::string::npos) << e;
}

TEST(ClipTextModel, AnyKeyPrefixGivesIdenticalOutputs) {
  auto backend = make_cpu_backend();
  auto c = SafetensorsFile::open(fixture("clip_text_tiny_case.safetensors"));
  const std::vector<int> ids = ids_of(c->tensor("ids_1"));
  ClipTextModel plain(fixture_weights(), *backend);
  ClipTextModel prefixed(fixture_weights("text_encoders.clip_l.transformer."), *backend);
  EXPECT_EQ(prefixed.config().prefix, "text_encoders.clip_l.transformer.text_model.");
  EXPECT_EQ(max_abs_diff(plain.encode(ids, tiny_eos()).hidden, prefixed.encode(ids, tiny_eos()).hidden), 0.0f);
}

TEST(ClipTextModel, PooledIsTheFirstEndTokensRow) {
  auto backend = make_cpu_backend();
  ClipTextModel model(fixture_weights(), *backend);
  const std::vector<int> ids{1, 5, 7, 9, 9, 9};
  const ClipTextOutput out = model.encode(ids, 9);
  for (int64_t j = 0; j < 32; ++j) EXPECT_EQ(out.pooled.f32()[j], out.hidden.f32()[3 * 32 + j]);
}

TEST(ClipTextModel, DamagedCheckpointsNameTheFirstTensorThatDoesNotFit) {
  auto backend = make_cpu_backend();
  auto missing = fixture_weights();
  auto w2 = std::make_unique<MemoryWeights>();
  for (const auto& [name, t] : missing->tensors())
    if (name != "text_model.encoder.layers.1.mlp.fc2.bias") w2->put(name, t);
  w2->set_metadata({{"raylight.clip_heads", "4"}});
  std::string e = error_of([&] { ClipTextModel(std::move(w2), *backend); });
  EXPECT_NE(e.find("missing tensor text_model.encoder.layers.1.mlp.fc2.bias"), std::string::npos) << e;

  auto w3 = fixture_weights();
  w3->put("text_model.encoder.layers.0.self_attn.k_proj.weight", Tensor::zeros({32, 16}));
  e = error_of([&] { ClipTextModel(std::move(w3), *backend); });
  EXPECT_NE(e.find("text_model.encoder.layers.0.self_attn.k_proj.weight has shape [32, 16], expected [32, 32]"),
            std::string::npos) << e;

  auto w4 = fixture_weights();
  w4->put("text_model.encoder.layers.x.mlp.fc1.bias", Tensor::zeros({64}));
  e = error_of([&] { ClipTextModel(std::move(w4), *backend); });
  EXPECT_NE(e.find("malformed layer tensor name"), std::string::npos) << e;

  ClipTextModel model(fixture_weights(), *backend);
  EXPECT_NE(error_of([&] { model.encode({1, 2, 5000}, 2); }).find("token id 5000 at position 2"), std::string::npos);
  EXPECT_NE(error_of([&] { model.encode(std::vector<int>(17, 1), 2); }).find("more than its 16 positions"),
            std::string::npos);
}

TEST(ClipTextModel, RandomTinyConfigRunsAndIsRecognised) {
  auto backend = make_cpu_backend();
  const ClipConfig c = clip_text_tiny_config();
  auto w = clip_random_weights(c);
  const auto r = recognise(*w, "tiny clip");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->family, "CLIP");
  ClipTextModel model(std::move(w), *backend);
  const ClipTextOutput out = model.encode({3, 4, 5, 6}, 6);
  EXPECT_EQ(out.hidden.shape(), (Shape{4, 32}));
  for (int64_t i = 0; i < out.hidden.numel(); ++i) ASSERT_TRUE(std::isfinite(out.hidden.f32()[i]));
}

TEST(ClipTextModel, ComfyScaledFp8FileMatchesItsDequantisedWeights) {
  // ComfyUI's scaled fp8 layout: products and the token embedding as F8_E4M3 of w / s with
  // s = max|w| / 448 as `<name>.scale_weight`, the rest kept; marker `scaled_fp8`.
  auto backend = make_cpu_backend();
  auto src = fixture_weights();
  auto deq = std::make_unique<MemoryWeights>();
  std::vector<std::pair<std::string, Tensor>> stored;
  for (const auto& [name, t] : src->tensors()) {
    const bool quantise = t.shape().size() == 2 && name.find("position_embedding") == std::string::npos;
    if (!quantise) {
      stored.push_back({name, t});
      deq->put(name, t);
      continue;
    }
    float amax = 0;
    for (int64_t i = 0; i < t.numel(); ++i) amax = std::max(amax, std::fabs(t.f32()[i]));
    const float s = amax / 448.0f;
    Tensor q = Tensor::empty(t.shape(), DType::F8E4M3);
    Tensor d = Tensor::empty(t.shape());
    for (int64_t i = 0; i < t.numel(); ++i) {
      const uint8_t code = f32_to_e4m3(t.f32()[i] / s);
      static_cast<uint8_t*>(q.raw())[i] = code;
      d.f32()[i] = e4m3_to_f32(code) * s;
    }
    Tensor scale = Tensor::empty({});
    scale.f32()[0] = s;
    stored.push_back({name, q});
    stored.push_back({name.substr(0, name.size() - 7) + ".scale_weight", scale});
    deq->put(name, d);
  }
  stored.push_back({"scaled_fp8", Tensor::empty({0}, DType::F8E4M3)});
  deq->set_metadata({{"raylight.clip_heads", "4"}});
  const std::string file = ::testing::TempDir() + "/clip_text_tiny_scaled_fp8.safetensors";
  write_safetensors(file, stored, {{"raylight.clip_heads", "4"}});

  auto c = SafetensorsFile::open(fixture("clip_text_tiny_case.safetensors"));
  const std::vector<int> ids = ids_of(c->tensor("ids_1"));
  ClipTextModel fp8(open_store(file, PartKind::TextEncoder), *backend);
  ClipTextModel reference(std::move(deq), *backend);
  const ClipTextOutput a = fp8.encode(ids, tiny_eos()), b = reference.encode(ids, tiny_eos());
  EXPECT_LT(max_abs_diff(a.hidden, b.hidden), 1e-5f);
  // And the fp8 rounding itself is visible against the fp16 goldens (the test can fail).
  EXPECT_GT(max_abs_diff(a.hidden, c->tensor("hidden_1").to_f32()), 1e-3f);
}
