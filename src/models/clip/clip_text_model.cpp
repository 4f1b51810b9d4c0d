#include "models/clip/clip_text_model.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "models/clip/clip_transformer.h"

namespace raylight {

ClipTextModel::ClipTextModel(std::unique_ptr<WeightStore> weights, Backend& backend,
                             std::unique_ptr<ClipTokenizer> tokenizer)
    : weights_(std::move(weights)), ops_(backend), tokenizer_(std::move(tokenizer)) {
  if (!weights_) fail("CLIP text encoder: no weights");
  config_ = detect_clip_config(*weights_, ClipTower::Text);
  if (tokenizer_ && tokenizer_->vocab_size() > config_.vocab)
    fail("CLIP tokenizer ", tokenizer_->source(), " has ids up to ", tokenizer_->vocab_size() - 1,
         ", beyond the encoder's ", config_.vocab, " embeddings");
  if (tokenizer_ && config_.positions < 2)
    fail("CLIP text encoder has ", config_.positions, " positions; a prompt needs at least 2");
  positions_ = clip_host_weight(*weights_, config_.name("embeddings.position_embedding.weight"));
  weights_->bind(backend);
}

const ClipTokenizer& ClipTextModel::tokenizer() const {
  if (!tokenizer_) fail("the CLIP text encoder has no tokenizer (vocab.json and merges.txt)");
  return *tokenizer_;
}

Tensor ClipTextModel::embed(const std::vector<int>& ids) {
  // Rows are read one by one from the stored bytes: the table is never converted whole.
  WeightStore::Stored s = weights_->stored(config_.name("embeddings.token_embedding.weight"));
  const bool fp8 = s.bytes.dtype() == DType::F8E4M3 || s.bytes.dtype() == DType::F8E5M2;
  const int64_t d = config_.width;
  Tensor x = Tensor::empty({static_cast<int64_t>(ids.size()), d});
  float* xp = x.f32();
  const float* pp = positions_.f32();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= config_.vocab)
      fail("token id ", ids[i], " at position ", i, " is outside the vocabulary [0, ", config_.vocab, ")");
    Tensor row = s.bytes.slice_rows(ids[i], ids[i] + 1).to_f32();
    const float* rp = row.f32();
    for (int64_t j = 0; j < d; ++j) {
      float v = rp[j] * s.scale;
      if (fp8 && std::isnan(v)) v = 0.0f;
      if (!std::isfinite(v)) fail("CLIP token embedding row ", ids[i], " holds a non-finite value");
      xp[i * d + j] = v + pp[i * d + j];
    }
  }
  return ops_.upload(x);
}

ClipTextOutput ClipTextModel::encode(const std::vector<int>& ids, int eos_id) {
  if (ids.empty()) fail("CLIP text encoder: no token ids to encode");
  if (static_cast<int64_t>(ids.size()) > config_.positions)
    fail("CLIP text encoder: ", ids.size(), " ids, more than its ", config_.positions, " positions");
  Tensor x = embed(ids);
  for (int64_t i = 0; i < config_.layers; ++i) x = clip_layer(ops_, *weights_, config_, i, x, true);
  x = ops_.layer_norm(x, weights_->get(config_.name("final_layer_norm.weight")),
                      weights_->get(config_.name("final_layer_norm.bias")), config_.eps);
  ClipTextOutput out;
  out.hidden = ops_.download(x);
  size_t at = ids.size() - 1;
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] == eos_id) {
      at = i;
      break;
    }
  out.pooled = Tensor::empty({config_.width});
  const float* hp = out.hidden.f32() + static_cast<int64_t>(at) * config_.width;
  std::copy(hp, hp + config_.width, out.pooled.f32());
  return out;
}

ClipTextOutput ClipTextModel::encode_prompt(const std::string& text) {
  size_t uncut = 0;
  const int length = static_cast<int>(std::min<int64_t>(config_.positions, ClipTokenizer::kContextLength));
  std::vector<int> ids = tokenizer().encode(text, length, &uncut);
  if (uncut > ids.size())
    std::fprintf(stderr, "raylight: warning: the prompt is %zu CLIP tokens; CLIP keeps the first %zu "
                 "(the rest is ignored)\n", uncut, ids.size());
  return encode(ids, tokenizer().eos_id());
}

}  // namespace raylight
