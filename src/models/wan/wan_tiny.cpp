#include "models/wan/wan_tiny.h"

#include <cmath>

#include "sampling/noise.h"

namespace raylight {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

WanConfig wan_tiny_config() {
  WanConfig c;
  c.dim = 128;
  c.num_heads = 4;
  c.ffn_dim = 256;
  c.num_layers = 2;
  c.text_dim = 64;
  return c;
}

std::unique_ptr<MemoryWeights> wan_tiny_weights() {
  const WanConfig c = wan_tiny_config();
  auto w = wan_random_weights(c);
  w->set_metadata({{"raylight.num_heads", std::to_string(c.num_heads)}, {"raylight.embedded", "tiny"}});
  return w;
}

WanConfig wan_tiny_ti2v_config() {
  WanConfig c = wan_tiny_config();
  c.in_dim = c.out_dim = 48;
  return c;
}

std::unique_ptr<MemoryWeights> wan_tiny_ti2v_weights() {
  const WanConfig c = wan_tiny_ti2v_config();
  auto w = wan_random_weights(c);
  w->set_metadata({{"raylight.num_heads", std::to_string(c.num_heads)}, {"raylight.embedded", "tiny-ti2v"}});
  return w;
}

std::unique_ptr<MemoryWeights> wan_random_weights(const WanConfig& c) {
  auto w = std::make_unique<MemoryWeights>();
  for (const auto& [name, shape] : wan_expected_tensors(c)) {
    Tensor t = gaussian_noise(shape, name_seed(name));
    float* p = t.f32();
    // Scale like a trained network: unit-gain linears, norm weights near 1, small biases
    // and modulations, so activations stay O(1) through the blocks.
    double scale = 0.1, offset = 0.0;
    if (ends_with(name, ".weight") && shape.size() >= 2) {
      scale = 1.0 / std::sqrt(static_cast<double>(shape_numel(shape) / shape[0]));
    } else if (name.find("norm") != std::string::npos && ends_with(name, ".weight")) {
      offset = 1.0;
    }
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(offset + scale * p[i]);
    w->put(name, t);
  }
  return w;
}

Tensor wan_tiny_context(int slot) {
  const WanConfig c = wan_tiny_config();
  return gaussian_noise({16, c.text_dim}, 0x7e57'0000ull + static_cast<uint64_t>(slot));
}

}  // namespace raylight
