#include "models/vae/flux_vae_tiny.h"

#include <cmath>

#include "sampling/noise.h"

namespace raylight {

FluxVaeConfig flux_vae_tiny_config() {
  FluxVaeConfig c;
  c.ch = 32;
  c.ch_mult = {1, 1, 2, 2};
  return c;
}

std::unique_ptr<MemoryWeights> flux_vae_tiny_weights() {
  auto w = std::make_unique<MemoryWeights>();
  for (const auto& [name, shape] : flux_vae_expected_tensors(flux_vae_tiny_config())) {
    Tensor t = gaussian_noise(shape, name_seed(name));
    float* p = t.f32();
    const bool matrix = shape.size() == 4;
    const bool norm_weight = !matrix && name.find("norm") != std::string::npos &&
                             name.compare(name.size() - 7, 7, ".weight") == 0;
    const double scale = matrix ? 1.0 / std::sqrt(static_cast<double>(shape_numel(shape) / shape[0])) : 0.1;
    const double offset = norm_weight ? 1.0 : 0.0;
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(offset + scale * static_cast<double>(p[i]));
    w->put(name, t);
  }
  w->set_metadata({{"raylight.model", "flux-vae-tiny"}});
  return w;
}

}  // namespace raylight
