#include "models/t5/umt5_text_encoder.h"

#include "core/error.h"

namespace raylight {
namespace {

class UMT5TextEncoder final : public TextEncoder {
 public:
  explicit UMT5TextEncoder(std::unique_ptr<UMT5Encoder> encoder) : encoder_(std::move(encoder)) {}
  std::string variant() const override { return encoder_->config().variant(); }
  std::vector<std::pair<std::string, int64_t>> outputs() const override {
    return {{"context", encoder_->config().d_model}};
  }
  Conditioning encode(const std::string& prompt) override {
    if (pad_ == 0) return {{"context", encoder_->encode_prompt(prompt)}};
    // As the official Flux code's tokenizer(padding="max_length", truncation=True): at most
    // pad_ ids ending in EOS, then pad ids, all encoded without a mask.
    const T5Tokenizer& tok = encoder_->tokenizer();
    std::vector<int> ids = tok.encode(prompt);
    if (static_cast<int64_t>(ids.size()) > pad_) {
      ids.resize(static_cast<size_t>(pad_));
      ids.back() = tok.eos_id();
    }
    ids.resize(static_cast<size_t>(pad_), tok.pad_id());
    return {{"context", encoder_->encode(ids)}};
  }
  void set_padding(int64_t tokens) override {
    if (tokens < 0 || tokens > 512) fail("text encoder ", variant(), " pads to 1 to 512 tokens, asked for ", tokens);
    pad_ = tokens;
  }

 private:
  std::unique_ptr<UMT5Encoder> encoder_;
  int64_t pad_ = 0;
};

}  // namespace

bool umt5_matches(const WeightStore& weights) { return looks_like_umt5(weights); }

std::string umt5_variant(const WeightStore& weights) { return detect_umt5_config(weights).variant(); }

std::unique_ptr<TextEncoder> make_umt5_text_encoder(std::unique_ptr<WeightStore> weights, Backend& backend,
                                                    const std::string& source, const std::string& tokenizer_path) {
  auto encoder = UMT5Encoder::from_store(std::move(weights), backend, source, tokenizer_path);
  if (!encoder->has_tokenizer())
    fail("text encoder ", source, " has no spiece_model tensor; pass --tokenizer FILE.model");
  return std::make_unique<UMT5TextEncoder>(std::move(encoder));
}

}  // namespace raylight
