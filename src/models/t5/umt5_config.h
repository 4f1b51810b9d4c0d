// umT5 encoder hyper-parameters and tensor names, read off a checkpoint. Files store no
// config, but every number is a tensor shape: vocab and d_model from the token embedding,
// heads and buckets from a relative_attention_bias [num_buckets, heads], d_kv from q's rows
// over heads, d_ff from wi_0. Two naming layouts exist:
//   HuggingFace / ComfyUI  "shared.weight" (or "encoder.embed_tokens.weight"),
//                          "encoder.block.N.layer.0.SelfAttention.{q,k,v,o}.weight", ...
//   official Wan (.pth names, if converted to safetensors)
//                          "token_embedding.weight", "blocks.N.attn.{q,k,v,o}.weight", ...
// either possibly under a common prefix. Detection checks every tensor's shape, so a wrong or
// truncated file fails at load with the tensor's name, not later inside a matmul.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "parallel/weight_store.h"

namespace raylight {

// Per-layer tensors; umT5 (unlike T5) gives every layer its own relative position bias.
enum class UMT5Tensor { Q, K, V, O, RelativeBias, AttnNorm, FfnGate, FfnUp, FfnDown, FfnNorm };

struct UMT5Names {
  enum class Layout { HuggingFace, Wan };
  Layout layout = Layout::HuggingFace;
  std::string prefix;     // prepended to every name ("" for the files people have)
  std::string embedding;  // full name of the token embedding [vocab, d_model]

  std::string layer(UMT5Tensor t, int64_t index) const;
  std::string final_norm() const;
};

struct UMT5Config {
  int64_t vocab = 0, d_model = 0, num_layers = 0, num_heads = 0, d_kv = 0, d_ff = 0;
  int64_t num_buckets = 32, max_distance = 128;  // max_distance is not stored; 128 in umT5
  // T5 v1.1 (Flux's T5-XXL) stores one relative position bias, in layer 0, which every
  // layer uses; umT5 stores one per layer. Everything else is the same architecture.
  bool shared_position_bias = false;
  float eps = 1e-6f;
  UMT5Names names;

  int64_t inner_dim() const { return num_heads * d_kv; }
  // "umT5-XXL", "T5-XXL v1.1", or "umT5 custom (d_model 64, 2 layers)" / "T5 custom (...)".
  std::string variant() const;
};

// Every tensor an encoder of this config holds, with its shape.
std::vector<std::pair<std::string, Shape>> umt5_expected_tensors(const UMT5Config& c);

// True when the store holds a umT5/T5 encoder in either layout.
bool looks_like_umt5(const WeightStore& weights);

// Reads the config from tensor shapes and checks every expected tensor; errors name the
// first tensor that is missing or has the wrong shape.
UMT5Config detect_umt5_config(const WeightStore& weights);

}  // namespace raylight
