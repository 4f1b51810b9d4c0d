#include "models/vae/wan22_vae_tiny.h"

#include <cmath>

#include "sampling/noise.h"

namespace raylight {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Wan22VaeConfig wan22_vae_tiny_config() {
  Wan22VaeConfig c;
  c.enc_dim = 4;
  c.dec_dim = 4;
  return c;
}

std::unique_ptr<MemoryWeights> wan22_vae_tiny_weights() {
  auto w = std::make_unique<MemoryWeights>();
  for (const auto& [name, shape] : wan22_vae_expected_tensors(wan22_vae_tiny_config())) {
    Tensor t = gaussian_noise(shape, name_seed(name));
    float* p = t.f32();
    // Gammas near 1, small biases, unit-gain convs; the output head smaller so the video
    // stays mostly inside the [-1, 1] clamp.
    double scale = 0.1, offset = 0.0;
    if (ends_with(name, ".gamma")) {
      offset = 1.0;
    } else if (ends_with(name, ".weight")) {
      scale = 1.0 / std::sqrt(static_cast<double>(shape_numel(shape) / shape[0]));
      if (name == "decoder.head.2.weight") scale *= 0.4;
    }
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(offset + scale * static_cast<double>(p[i]));
    w->put(name, t);
  }
  w->set_metadata({{"raylight.model", "wan2.2-vae-tiny"}});
  return w;
}

}  // namespace raylight
