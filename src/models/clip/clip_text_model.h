// The CLIP text tower (OpenAI CLIP-L as ComfyUI's clip_l.safetensors holds it): token plus
// position embeddings, pre-LN causal layers (clip_transformer.h), final_layer_norm. The ids
// are always the full context (77: start, prompt, end, end-padding), as HF and ComfyUI run
// it; the causal mask makes padding invisible to the tokens before it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "models/clip/clip_config.h"
#include "models/clip/clip_tokenizer.h"
#include "parallel/weight_store.h"

namespace raylight {

struct ClipTextOutput {
  Tensor hidden;  // host fp32 [tokens, width]: final_layer_norm of every token
  Tensor pooled;  // host fp32 [width]: hidden at the first end token (no projection)
};

class ClipTextModel {
 public:
  // Detects the config (errors name the first tensor that does not fit) and binds `weights`
  // to `backend`. Without a tokenizer only encode(ids) works.
  ClipTextModel(std::unique_ptr<WeightStore> weights, Backend& backend,
                std::unique_ptr<ClipTokenizer> tokenizer = nullptr);

  const ClipConfig& config() const { return config_; }
  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  const ClipTokenizer& tokenizer() const;

  // ids: 1..positions ids in [0, vocab); pooled is taken at the first `eos_id` (the last
  // token when there is none, as the position HF's argmax would pick for padded ids).
  ClipTextOutput encode(const std::vector<int>& ids, int eos_id);
  // tokenizer().encode(text) at the model's context length, then encode().
  ClipTextOutput encode_prompt(const std::string& text);

 private:
  Tensor embed(const std::vector<int>& ids);

  std::unique_ptr<WeightStore> weights_;
  Backend& ops_;
  std::unique_ptr<ClipTokenizer> tokenizer_;
  ClipConfig config_;
  Tensor positions_;  // host fp32 [positions, width]
};

}  // namespace raylight
