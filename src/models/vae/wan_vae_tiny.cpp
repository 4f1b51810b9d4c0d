// Tiny weights from the documented noise generator: one stream per tensor name, scaled
// like a trained network so activations stay O(1) and the video is not all clamped.
#include "models/vae/wan_vae_tiny.h"

#include <cmath>

#include "sampling/noise.h"

namespace raylight {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

WanVaeConfig wan_vae_tiny_config() {
  WanVaeConfig c;
  c.base_dim = 8;
  return c;
}

std::unique_ptr<MemoryWeights> wan_vae_tiny_weights() {
  return wan_style_vae_tiny_weights(wan_vae_expected_tensors(wan_vae_tiny_config()), "wan2.1-vae-tiny");
}

std::unique_ptr<MemoryWeights> wan_style_vae_tiny_weights(const std::vector<std::pair<std::string, Shape>>& tensors,
                                                          const std::string& model) {
  auto w = std::make_unique<MemoryWeights>();
  for (const auto& [name, shape] : tensors) {
    Tensor t = gaussian_noise(shape, name_seed(name));
    float* p = t.f32();
    // Like a trained network's scale: unit-gain convs, gammas near 1, small biases; the
    // output head a little smaller so most pixels land inside the [-1, 1] clamp.
    double scale = 0.1, offset = 0.0;
    if (ends_with(name, ".gamma")) {
      offset = 1.0;
    } else if (ends_with(name, ".weight")) {
      scale = 1.0 / std::sqrt(static_cast<double>(shape_numel(shape) / shape[0]));
      if (name == "decoder.head.2.weight") scale *= 0.4;
    }
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(offset + scale * p[i]);
    w->put(name, t);
  }
  w->set_metadata({{"raylight.model", model}});
  return w;
}

}  // namespace raylight
