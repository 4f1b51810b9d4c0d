// Layout and prefix are found from one anchor tensor per layout (the encoder's final norm,
// or the Wan block 0 position embedding), so keys of other models in the same file (a T5
// decoder, a DiT) are never mistaken for encoder tensors.
#include "models/t5/umt5_config.h"

#include <optional>
#include <set>

#include "core/error.h"

namespace raylight {
namespace {

constexpr const char* kHfAnchor = "encoder.final_layer_norm.weight";
constexpr const char* kWanAnchor = "blocks.0.pos_embedding.embedding.weight";

bool ends_with(const std::string& s, const std::string& x) {
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

// The layout and prefix of the first anchor found, if any.
std::optional<UMT5Names> find_layout(const WeightStore& w) {
  for (const std::string& name : w.names()) {
    UMT5Names n;
    if (ends_with(name, kHfAnchor)) {
      n.layout = UMT5Names::Layout::HuggingFace;
      n.prefix = name.substr(0, name.size() - std::string(kHfAnchor).size());
    } else if (ends_with(name, kWanAnchor)) {
      n.layout = UMT5Names::Layout::Wan;
      n.prefix = name.substr(0, name.size() - std::string(kWanAnchor).size());
    } else {
      continue;
    }
    if (n.layout == UMT5Names::Layout::Wan) {
      n.embedding = n.prefix + "token_embedding.weight";
    } else {
      // HF's UMT5EncoderModel ties the two; files keep one or the other (or both).
      n.embedding = n.prefix + "shared.weight";
      if (!w.has(n.embedding) && w.has(n.prefix + "encoder.embed_tokens.weight"))
        n.embedding = n.prefix + "encoder.embed_tokens.weight";
    }
    return n;
  }
  return std::nullopt;
}

}  // namespace

std::string UMT5Names::layer(UMT5Tensor t, int64_t index) const {
  const std::string i = std::to_string(index);
  if (layout == Layout::Wan) {
    const std::string b = prefix + "blocks." + i + ".";
    switch (t) {
      case UMT5Tensor::Q:
        return b + "attn.q.weight";
      case UMT5Tensor::K:
        return b + "attn.k.weight";
      case UMT5Tensor::V:
        return b + "attn.v.weight";
      case UMT5Tensor::O:
        return b + "attn.o.weight";
      case UMT5Tensor::RelativeBias:
        return b + "pos_embedding.embedding.weight";
      case UMT5Tensor::AttnNorm:
        return b + "norm1.weight";
      case UMT5Tensor::FfnGate:
        return b + "ffn.gate.0.weight";  // GELU branch
      case UMT5Tensor::FfnUp:
        return b + "ffn.fc1.weight";  // linear branch
      case UMT5Tensor::FfnDown:
        return b + "ffn.fc2.weight";
      case UMT5Tensor::FfnNorm:
        return b + "norm2.weight";
    }
  }
  const std::string b = prefix + "encoder.block." + i + ".layer.";
  switch (t) {
    case UMT5Tensor::Q:
      return b + "0.SelfAttention.q.weight";
    case UMT5Tensor::K:
      return b + "0.SelfAttention.k.weight";
    case UMT5Tensor::V:
      return b + "0.SelfAttention.v.weight";
    case UMT5Tensor::O:
      return b + "0.SelfAttention.o.weight";
    case UMT5Tensor::RelativeBias:
      return b + "0.SelfAttention.relative_attention_bias.weight";
    case UMT5Tensor::AttnNorm:
      return b + "0.layer_norm.weight";
    case UMT5Tensor::FfnGate:
      return b + "1.DenseReluDense.wi_0.weight";
    case UMT5Tensor::FfnUp:
      return b + "1.DenseReluDense.wi_1.weight";
    case UMT5Tensor::FfnDown:
      return b + "1.DenseReluDense.wo.weight";
    case UMT5Tensor::FfnNorm:
      return b + "1.layer_norm.weight";
  }
  return {};
}

std::string UMT5Names::final_norm() const {
  return prefix + (layout == Layout::Wan ? "norm.weight" : kHfAnchor);
}

std::string UMT5Config::variant() const {
  const bool xxl = d_model == 4096 && num_layers == 24 && num_heads == 64 && d_kv == 64 && d_ff == 10240;
  if (xxl && !shared_position_bias && vocab == 256384) return "umT5-XXL";
  if (xxl && shared_position_bias && vocab == 32128) return "T5-XXL v1.1";
  return std::string(shared_position_bias ? "T5" : "umT5") + " custom (d_model " + std::to_string(d_model) + ", " +
         std::to_string(num_layers) + " layers)";
}

std::vector<std::pair<std::string, Shape>> umt5_expected_tensors(const UMT5Config& c) {
  const UMT5Names& n = c.names;
  const int64_t d = c.d_model, inner = c.inner_dim();
  std::vector<std::pair<std::string, Shape>> t{{n.embedding, {c.vocab, d}}};
  for (int64_t i = 0; i < c.num_layers; ++i) {
    for (UMT5Tensor p : {UMT5Tensor::Q, UMT5Tensor::K, UMT5Tensor::V})
      t.push_back({n.layer(p, i), {inner, d}});
    t.push_back({n.layer(UMT5Tensor::O, i), {d, inner}});
    if (i == 0 || !c.shared_position_bias)
      t.push_back({n.layer(UMT5Tensor::RelativeBias, i), {c.num_buckets, c.num_heads}});
    t.push_back({n.layer(UMT5Tensor::AttnNorm, i), {d}});
    t.push_back({n.layer(UMT5Tensor::FfnGate, i), {c.d_ff, d}});
    t.push_back({n.layer(UMT5Tensor::FfnUp, i), {c.d_ff, d}});
    t.push_back({n.layer(UMT5Tensor::FfnDown, i), {d, c.d_ff}});
    t.push_back({n.layer(UMT5Tensor::FfnNorm, i), {d}});
  }
  t.push_back({n.final_norm(), {d}});
  return t;
}

bool looks_like_umt5(const WeightStore& w) { return find_layout(w).has_value(); }

UMT5Config detect_umt5_config(const WeightStore& w) {
  std::optional<UMT5Names> names = find_layout(w);
  if (!names) fail("not a umT5 encoder: no tensor named ", kHfAnchor, " or ", kWanAnchor);
  UMT5Config c;
  c.names = *names;
  auto need = [&](const std::string& name, size_t ndim) {
    if (!w.has(name)) fail("umT5 encoder tensor ", name, " is missing");
    Shape s = w.shape(name);
    if (s.size() != ndim)
      fail("umT5 encoder tensor ", name, " has shape ", shape_str(s), ", expected ", ndim,
           " dimensions");
    return s;
  };
  const Shape emb = need(c.names.embedding, 2);
  c.vocab = emb[0];
  c.d_model = emb[1];
  const Shape bias = need(c.names.layer(UMT5Tensor::RelativeBias, 0), 2);
  c.num_buckets = bias[0];
  c.num_heads = bias[1];
  const int64_t inner = need(c.names.layer(UMT5Tensor::Q, 0), 2)[0];
  if (c.num_heads <= 0 || inner % c.num_heads != 0)
    fail("umT5 encoder tensor ", c.names.layer(UMT5Tensor::Q, 0), " has ", inner,
         " rows, not a multiple of the ", c.num_heads, " heads of ",
         c.names.layer(UMT5Tensor::RelativeBias, 0));
  c.d_kv = inner / c.num_heads;
  c.d_ff = need(c.names.layer(UMT5Tensor::FfnGate, 0), 2)[0];
  if (c.num_buckets < 4 || c.num_buckets % 2 != 0)
    fail("umT5 encoder tensor ", c.names.layer(UMT5Tensor::RelativeBias, 0), " has ", c.num_buckets,
         " buckets; bidirectional buckets need an even number >= 4");

  // Layers: the block indices present, which must be 0..N-1.
  const std::string block =
      c.names.prefix + (c.names.layout == UMT5Names::Layout::Wan ? "blocks." : "encoder.block.");
  std::set<int64_t> blocks;
  for (const std::string& name : w.names()) {
    if (name.rfind(block, 0) != 0) continue;
    const size_t dot = name.find('.', block.size());
    try {
      blocks.insert(std::stoll(name.substr(block.size(), dot - block.size())));
    } catch (const std::exception&) {
      fail("umT5 encoder has a malformed block tensor name: ", name);
    }
  }
  c.num_layers = static_cast<int64_t>(blocks.size());
  if (c.num_layers == 0 || *blocks.rbegin() != c.num_layers - 1)
    fail("umT5 encoder blocks are not numbered 0..N-1 (found ", blocks.size(), " blocks)");
  c.shared_position_bias = c.num_layers > 1 && !w.has(c.names.layer(UMT5Tensor::RelativeBias, 1));
  if (c.shared_position_bias)
    for (int64_t i = 2; i < c.num_layers; ++i)
      if (w.has(c.names.layer(UMT5Tensor::RelativeBias, i)))
        fail("T5 encoder tensor ", c.names.layer(UMT5Tensor::RelativeBias, 1), " is missing but layer ", i,
             " has its own position bias: neither umT5 (one per layer) nor T5 v1.1 (layer 0's, shared)");

  for (const auto& [name, shape] : umt5_expected_tensors(c)) {
    if (!w.has(name)) {
      if (name.find("relative_attention_bias") != std::string::npos)
        fail("umT5 encoder (", c.variant(), ") is missing tensor ", name,
             ": umT5 has a position bias in every layer (T5 v1.1 has one, in layer 0, only)");
      fail("umT5 encoder (", c.variant(), ") is missing tensor ", name);
    }
    if (w.shape(name) != shape)
      fail("umT5 encoder (", c.variant(), ") tensor ", name, " has shape ",
           shape_str(w.shape(name)), ", expected ", shape_str(shape));
  }
  return c;
}

}  // namespace raylight
