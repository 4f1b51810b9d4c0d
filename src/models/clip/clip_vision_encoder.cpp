#include "models/clip/clip_vision_encoder.h"

#include "core/error.h"
#include "models/clip/clip_vision_model.h"

namespace raylight {
namespace {

class ClipVisionEncoder final : public ImageEncoder {
 public:
  explicit ClipVisionEncoder(std::unique_ptr<ClipVisionModel> model) : model_(std::move(model)) {}
  std::string variant() const override { return model_->config().variant(); }
  Conditioning encode(const Tensor& image) override { return {{"clip_fea", model_->encode_image(image)}}; }

 private:
  std::unique_ptr<ClipVisionModel> model_;
};

}  // namespace

bool clip_vision_matches(const WeightStore& weights) { return looks_like_clip_vision(weights); }

std::string clip_vision_variant(const WeightStore& weights) {
  return detect_clip_config(weights, ClipTower::Vision).variant();
}

std::unique_ptr<ImageEncoder> make_clip_vision_encoder(std::unique_ptr<WeightStore> weights, Backend& backend,
                                                       const std::string& source) {
  try {
    return std::make_unique<ClipVisionEncoder>(std::make_unique<ClipVisionModel>(std::move(weights), backend));
  } catch (const Error& e) {
    fail("image encoder ", source, ": ", e.what());
  }
}

}  // namespace raylight
