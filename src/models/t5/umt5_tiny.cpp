// Tiny weights are scaled like T5's initialisation (q by 1/sqrt(d_model * d_kv), other
// linears by 1/sqrt(fan_in), norms near 1, an O(1) position bias), so activations stay O(1)
// and the position bias visibly shapes the attention.
#include "models/t5/umt5_tiny.h"

#include <algorithm>
#include <cmath>

#include "sampling/noise.h"

namespace raylight {
namespace {

const unsigned char kTinySpieceModel[] = {
#include "models/t5/tiny_spiece_model.inc"
};

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

UMT5Config umt5_tiny_config() {
  UMT5Config c;
  c.vocab = 500;
  c.d_model = 64;
  c.num_layers = 2;
  c.num_heads = 4;
  c.d_kv = 16;
  c.d_ff = 96;
  c.names.embedding = "shared.weight";
  return c;
}

std::unique_ptr<MemoryWeights> umt5_tiny_weights() {
  const UMT5Config c = umt5_tiny_config();
  auto w = std::make_unique<MemoryWeights>();
  for (const auto& [name, shape] : umt5_expected_tensors(c)) {
    Tensor t = gaussian_noise(shape, name_seed(name));
    double scale = 1.0, offset = 0.0;
    if (contains(name, "norm")) {
      scale = 0.1;
      offset = 1.0;
    } else if (contains(name, ".q.")) {
      scale = 1.0 / std::sqrt(static_cast<double>(c.d_model * c.d_kv));
    } else if (!contains(name, "relative_attention_bias") && name != c.names.embedding) {
      scale = 1.0 / std::sqrt(static_cast<double>(shape[1]));
    }
    float* p = t.f32();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(offset + scale * p[i]);
    w->put(name, t);
  }
  // The tokenizer travels with the weights, as in ComfyUI's umT5 files.
  const std::string_view sp = umt5_tiny_spiece_model();
  Tensor bytes = Tensor::empty({static_cast<int64_t>(sp.size())}, DType::U8);
  std::copy(sp.begin(), sp.end(), static_cast<char*>(bytes.raw()));
  w->put(T5Tokenizer::kSpieceTensor, bytes);
  w->set_metadata({{"raylight.embedded", "tiny"}});
  return w;
}

std::string_view umt5_tiny_spiece_model() {
  return {reinterpret_cast<const char*>(kTinySpieceModel), sizeof(kTinySpieceModel)};
}

T5Tokenizer umt5_tiny_tokenizer() {
  return T5Tokenizer::from_bytes(umt5_tiny_spiece_model(), "embedded tiny SentencePiece model");
}

}  // namespace raylight
