#include "models/clip/clip_text_encoder.h"

#include "core/error.h"
#include "models/clip/clip_text_model.h"

namespace raylight {
namespace {

class ClipTextEncoder final : public TextEncoder {
 public:
  explicit ClipTextEncoder(std::unique_ptr<ClipTextModel> model) : model_(std::move(model)) {}
  std::string variant() const override { return model_->config().variant(); }
  std::vector<std::pair<std::string, int64_t>> outputs() const override {
    return {{"pooled", model_->config().width}};
  }
  Conditioning encode(const std::string& prompt) override { return {{"pooled", model_->encode_prompt(prompt).pooled}}; }

 private:
  std::unique_ptr<ClipTextModel> model_;
};

std::string bytes_of(const WeightStore& w, const std::string& name, const std::string& source) {
  const Tensor t = w.stored(name).bytes;
  if (t.dtype() != DType::U8 || t.shape().size() != 1)
    fail("text encoder ", source, ": tensor ", name, " is not a 1-D uint8 tensor of file bytes");
  return std::string(static_cast<const char*>(t.raw()), static_cast<size_t>(t.numel()));
}

}  // namespace

bool clip_text_matches(const WeightStore& weights) { return looks_like_clip_text(weights); }

std::string clip_text_variant(const WeightStore& weights) {
  return detect_clip_config(weights, ClipTower::Text).variant();
}

std::unique_ptr<TextEncoder> make_clip_text_encoder(std::unique_ptr<WeightStore> weights, Backend& backend,
                                                    const std::string& source, const std::string& tokenizer_path) {
  try {
    std::unique_ptr<ClipTokenizer> tokenizer;
    if (!tokenizer_path.empty() && !ClipTokenizer::find_folder(tokenizer_path).empty())
      tokenizer = std::make_unique<ClipTokenizer>(ClipTokenizer::from_path(tokenizer_path));
    else if (weights->has(kClipVocabTensor) && weights->has(kClipMergesTensor))
      tokenizer = std::make_unique<ClipTokenizer>(ClipTokenizer::from_text(
          bytes_of(*weights, kClipVocabTensor, source), bytes_of(*weights, kClipMergesTensor, source),
          source + ": " + kClipVocabTensor));
    if (!tokenizer)
      fail("no CLIP tokenizer",
           tokenizer_path.empty() ? std::string() : " in " + tokenizer_path,
           "; give the folder holding vocab.json and merges.txt (ComfyUI's comfy/sd1_tokenizer) or the ComfyUI "
           "folder with --tokenizer");
    auto model = std::make_unique<ClipTextModel>(std::move(weights), backend, std::move(tokenizer));
    return std::make_unique<ClipTextEncoder>(std::move(model));
  } catch (const Error& e) {
    fail("text encoder ", source, ": ", e.what());
  }
}

}  // namespace raylight
