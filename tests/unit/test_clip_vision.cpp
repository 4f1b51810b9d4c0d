// The CLIP vision tower against goldens from tests/fixtures/make_clip_golden.py: Wan's
// preprocessing (PyTorch bicubic to 16x16 from 20x24, CLIP mean/std) and a float64 forward
// (checked there against HF CLIPVisionModel's hidden_states[-2]: 1.4e-7 apart) of a tiny
// ViT (width 32, 3 layers, 4 heads, patch 4, 17 tokens) stored in fp16. 1e-5 absolute on
// outputs up to ~4.7 (fp32 over 2 layers).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include "backend/backend.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "models/clip/clip_image_preprocess.h"
#include "models/clip/clip_tiny.h"
#include "models/clip/clip_vision_model.h"
#include "models/registry.h"

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

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ClipVision, PreprocessingMatchesTorchBicubicAndClipNormalisation) {
  auto c = SafetensorsFile::open(fixture("clip_vision_tiny_case.safetensors"));
  const Tensor pixels = clip_preprocess_image(c->tensor("image").to_f32(), 16);
  EXPECT_LT(max_abs_diff(pixels, c->tensor("pixels").to_f32()), 2e-6f);
}

TEST(ClipVision, MatchesGoldenPenultimateTokensThroughTheRegistry) {
  auto backend = make_cpu_backend();
  const std::string file = fixture("clip_vision_tiny.safetensors");
  auto store = open_store(file, PartKind::ImageEncoder);
  const auto r = recognise(*store, file);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->part, PartKind::ImageEncoder);
  EXPECT_EQ(r->variant, "CLIP vision custom (width 32, 3 layers, patch 4, image 16)");
  auto enc = make_image_encoder(std::move(store), *backend, file);
  auto c = SafetensorsFile::open(fixture("clip_vision_tiny_case.safetensors"));
  const Conditioning out = enc->encode(c->tensor("image").to_f32());
  EXPECT_LT(max_abs_diff(out.at("clip_fea"), c->tensor("clip_fea").to_f32()), kTolerance);
}

TEST(ClipVision, BadImagesAndDamagedCheckpointsGiveClearErrors) {
  auto backend = make_cpu_backend();
  ClipVisionModel model(clip_random_weights(clip_vision_tiny_config()), *backend);
  EXPECT_EQ(model.encode_image(Tensor::zeros({3, 9, 31})).shape(), (Shape{17, 32}));
  EXPECT_NE(error_of([&] { model.encode_image(Tensor::zeros({4, 16, 16})); }).find("[3, H, W]"), std::string::npos);
  EXPECT_NE(error_of([&] { model.encode_image(Tensor::zeros({3, 0, 16})); }).find("sides must be"), std::string::npos);
  Tensor nan = Tensor::zeros({3, 4, 4});
  nan.f32()[5] = NAN;
  EXPECT_NE(error_of([&] { model.encode_image(nan); }).find("non-finite value at element 5"), std::string::npos);

  auto w = clip_random_weights(clip_vision_tiny_config());
  w->put("vision_model.embeddings.position_embedding.weight", Tensor::zeros({18, 32}));
  EXPECT_NE(error_of([&] { ClipVisionModel(std::move(w), *backend); }).find("not a square number of patches"),
            std::string::npos);
  auto w2 = clip_random_weights(clip_vision_tiny_config());
  w2->put("vision_model.encoder.layers.2.mlp.fc1.weight", Tensor::zeros({64, 31}));
  const std::string e = error_of([&] { ClipVisionModel(std::move(w2), *backend); });
  EXPECT_NE(e.find("vision_model.encoder.layers.2.mlp.fc1.weight has shape [64, 31], expected [64, 32]"),
            std::string::npos) << e;
  // A text tower is not an image encoder: the error says what it is.
  const std::string text = fixture("clip_text_tiny.safetensors");
  const std::string e2 = error_of([&] { make_image_encoder(open_store(text, PartKind::ImageEncoder), *backend, text); });
  EXPECT_NE(e2.find("it is a CLIP text encoder"), std::string::npos) << e2;
}
