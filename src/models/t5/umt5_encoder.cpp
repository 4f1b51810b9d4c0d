// umT5 forward pass. Weights come by name from the store; the embedding is read row by row
// from the stored bytes (the XXL table is 256384 x 4096: never converted as a whole).
#include "models/t5/umt5_encoder.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "models/t5/umt5_attention.h"

namespace raylight {

UMT5Encoder::UMT5Encoder(std::unique_ptr<WeightStore> weights, Backend& backend,
                         std::unique_ptr<T5Tokenizer> tokenizer)
    : weights_(std::move(weights)), ops_(backend), tokenizer_(std::move(tokenizer)) {
  if (!weights_) fail("umT5 encoder: no weights");
  config_ = detect_umt5_config(*weights_);
  weights_->bind(backend);
  if (tokenizer_ && tokenizer_->vocab_size() > config_.vocab)
    fail("tokenizer ", tokenizer_->source(), " has ", tokenizer_->vocab_size(),
         " pieces, more than the encoder's ", config_.vocab, " embeddings");
}

std::unique_ptr<UMT5Encoder> UMT5Encoder::from_store(std::unique_ptr<WeightStore> weights, Backend& backend,
                                                     const std::string& source,
                                                     const std::string& tokenizer_path) {
  std::unique_ptr<T5Tokenizer> tokenizer;
  if (!tokenizer_path.empty())
    tokenizer = std::make_unique<T5Tokenizer>(T5Tokenizer::from_file(tokenizer_path));
  try {
    if (!tokenizer) tokenizer = T5Tokenizer::from_store(*weights, source);
    return std::make_unique<UMT5Encoder>(std::move(weights), backend, std::move(tokenizer));
  } catch (const Error& e) {
    fail("text encoder ", source, ": ", e.what());
  }
}

const T5Tokenizer& UMT5Encoder::tokenizer() const {
  if (!tokenizer_)
    fail(
        "the umT5 encoder has no tokenizer: its file has no spiece_model tensor; "
        "give a SentencePiece .model file");
  return *tokenizer_;
}

Tensor UMT5Encoder::weight(UMT5Tensor t, int64_t index) {
  return weights_->get(config_.names.layer(t, index));
}

Tensor UMT5Encoder::host_weight(const std::string& name) const {
  WeightStore::Stored s = weights_->stored(name);
  Tensor t = s.bytes.to_f32();
  if (s.scale == 1.0f) return t;
  t = t.clone();  // to_f32 of fp32 bytes may be a read-only view into the mapping
  float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] *= s.scale;
  return t;
}

Tensor UMT5Encoder::multiply(const Tensor& a, const Tensor& b) {
  // The op set has no elementwise product, but add_gated(x, y, gate) is x += y * gate with
  // gate broadcast over rows: seen as a single row, gate is elementwise and x = 0 + a * b
  // exactly. (A GPU backend would rather fuse gelu(wi_0 h) * (wi_1 h) into one kernel.)
  const int64_t n = a.numel();
  Tensor out = ops_.upload(Tensor::zeros({1, n}));
  ops_.add_gated(out, a.reshape({1, n}), b.reshape({n}));
  return out.reshape(a.shape());
}

Tensor UMT5Encoder::embed(const std::vector<int>& ids) {
  WeightStore::Stored s = weights_->stored(config_.names.embedding);
  const bool fp8 = s.bytes.dtype() == DType::F8E4M3 || s.bytes.dtype() == DType::F8E5M2;
  const int64_t d = config_.d_model;
  Tensor x = Tensor::empty({static_cast<int64_t>(ids.size()), d});
  float* xp = x.f32();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= config_.vocab)
      fail("token id ", ids[i], " at position ", i, " is outside the vocabulary [0, ",
           config_.vocab, ")");
    Tensor row = s.bytes.slice_rows(ids[i], ids[i] + 1).to_f32();
    const float* rp = row.f32();
    for (int64_t j = 0; j < d; ++j) {
      float v = rp[j] * s.scale;
      if (fp8 && std::isnan(v)) v = 0.0f;  // fp8 NaN codes, as ComfyUI's nan_to_num does
      xp[i * d + j] = v;
    }
  }
  return ops_.upload(x);
}

Tensor UMT5Encoder::layer(int64_t index, const Tensor& x_in) {
  const UMT5Config& c = config_;
  const int64_t L = x_in.dim(0);
  const Shape heads{L, c.num_heads, c.d_kv};
  weights_->begin_block(static_cast<int>(index));
  Tensor h = ops_.rms_norm(x_in, weight(UMT5Tensor::AttnNorm, index), c.eps);
  // Products over one input go together (a GPU quantises it once for fp8 weights).
  const std::vector<Tensor> qkv = ops_.linears(
      h, {{weight(UMT5Tensor::Q, index), {}}, {weight(UMT5Tensor::K, index), {}}, {weight(UMT5Tensor::V, index), {}}});
  Tensor q = qkv[0].reshape(heads), k = qkv[1].reshape(heads), v = qkv[2].reshape(heads);
  const int64_t bias_layer = c.shared_position_bias ? 0 : index;
  Tensor bias = umt5_position_bias(host_weight(c.names.layer(UMT5Tensor::RelativeBias, bias_layer)), L,
                                   c.max_distance);
  Tensor a = ops_.attention_offset_bias(q, k, v, bias, 1.0f).reshape({L, c.inner_dim()});
  Tensor x = ops_.add(x_in, ops_.linear(a, weight(UMT5Tensor::O, index), {}));

  h = ops_.rms_norm(x, weight(UMT5Tensor::FfnNorm, index), c.eps);
  const std::vector<Tensor> gate_up =
      ops_.linears(h, {{weight(UMT5Tensor::FfnGate, index), {}, /*gelu_tanh=*/true}, {weight(UMT5Tensor::FfnUp, index), {}}});
  const Tensor &gate = gate_up[0], &up = gate_up[1];
  x = ops_.add(x, ops_.linear(multiply(gate, up), weight(UMT5Tensor::FfnDown, index), {}));
  weights_->end_block(static_cast<int>(index));
  return x;
}

Tensor UMT5Encoder::encode(const std::vector<int>& ids) {
  if (ids.empty()) fail("umT5 encoder: no token ids to encode");
  Tensor x = embed(ids);
  for (int64_t i = 0; i < config_.num_layers; ++i) x = layer(i, x);
  x = ops_.rms_norm(x, weights_->get(config_.names.final_norm()), config_.eps);
  return ops_.download(x);
}

Tensor UMT5Encoder::encode_prompt(const std::string& text) {
  size_t uncut = 0;
  std::vector<int> ids = tokenizer().encode(text, T5Tokenizer::kMaxLength, &uncut);
  // Cutting is what the reference pipeline does too, but silently losing the end of a long
  // prompt surprises people.
  if (uncut > ids.size())
    std::fprintf(stderr, "raylight: warning: the prompt is %zu tokens; the text encoder keeps "
                 "the first %zu (the rest is ignored)\n", uncut, ids.size());
  return encode(ids);
}

}  // namespace raylight
