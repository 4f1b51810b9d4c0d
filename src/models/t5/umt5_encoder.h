// The umT5-XXL text encoder of Wan 2.1, written against the Backend op set and the
// WeightStore like the DiT: token embedding, then per layer
//   x += o(attention_offset_bias(q, k, v of rms_norm(x)))          (own position bias per layer)
//   x += wo(gelu_tanh(wi_0(h)) * wi_1(h)),  h = rms_norm(x)   (gated-GELU FFN)
// and a final rms_norm (T5's norm: no mean subtraction, no bias, eps 1e-6).
//
// A prompt is encoded unpadded and the result is [tokens, d_model]. That is all Wan needs:
// the official pipeline pads ids to 512 with a mask and keeps the first seq_len rows, which
// equal the unpadded encoding (masked keys get zero weight and the position bias depends
// only on offsets), and the DiT zero-pads the context to text_len itself
// (WanModel::embed_context).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "models/t5/t5_tokenizer.h"
#include "models/t5/umt5_config.h"
#include "parallel/weight_store.h"

namespace raylight {

class UMT5Encoder {
 public:
  // Detects the config from `weights` (errors name the offending tensor) and binds them to
  // `backend`. The tokenizer is optional: without one only encode(ids) works.
  UMT5Encoder(std::unique_ptr<WeightStore> weights, Backend& backend,
              std::unique_ptr<T5Tokenizer> tokenizer = nullptr);

  // An encoder over a store (HF/ComfyUI names, bf16/fp16/fp32 or ComfyUI scaled fp8; the
  // embedded tiny one). The tokenizer comes from `tokenizer_path` (a SentencePiece .model)
  // when given, else from the store's `spiece_model` tensor when it has one, else there is
  // none. Errors name `source`.
  static std::unique_ptr<UMT5Encoder> from_store(std::unique_ptr<WeightStore> weights, Backend& backend,
                                                 const std::string& source,
                                                 const std::string& tokenizer_path = "");

  const UMT5Config& config() const { return config_; }
  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  // Throws when the encoder has no tokenizer.
  const T5Tokenizer& tokenizer() const;

  // Host fp32 [ids.size(), d_model]. Ids must be in [0, vocab); at least one.
  Tensor encode(const std::vector<int>& ids);
  // tokenizer().encode(text) (EOS appended, at most 512 ids), then encode().
  Tensor encode_prompt(const std::string& text);

 private:
  Tensor embed(const std::vector<int>& ids);
  Tensor layer(int64_t index, const Tensor& x);
  Tensor weight(UMT5Tensor t, int64_t index);
  // A small weight (norm, position bias table) as host fp32 with its scale applied.
  Tensor host_weight(const std::string& name) const;
  // a * b elementwise for same-shaped [M, N] backend tensors.
  Tensor multiply(const Tensor& a, const Tensor& b);

  std::unique_ptr<WeightStore> weights_;
  Backend& ops_;
  std::unique_ptr<T5Tokenizer> tokenizer_;
  UMT5Config config_;
};

}  // namespace raylight
