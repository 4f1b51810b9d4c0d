#include "models/clip/clip_tiny.h"

#include <cmath>

#include "sampling/noise.h"

namespace raylight {
namespace {

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

ClipConfig clip_text_tiny_config() {
  ClipConfig c;
  c.tower = ClipTower::Text;
  c.prefix = "text_model.";
  c.width = 32;
  c.layers = 2;
  c.heads = 4;
  c.mlp = 64;
  c.positions = 16;
  c.vocab = 1024;
  c.quick_gelu = true;
  return c;
}

ClipConfig clip_vision_tiny_config() {
  ClipConfig c;
  c.tower = ClipTower::Vision;
  c.prefix = "vision_model.";
  c.width = 32;
  c.layers = 3;
  c.heads = 4;
  c.mlp = 64;
  c.patch = 4;
  c.image_size = 16;
  c.positions = 17;
  return c;
}

std::unique_ptr<MemoryWeights> clip_random_weights(const ClipConfig& c) {
  auto w = std::make_unique<MemoryWeights>();
  for (const auto& [name, shape] : clip_expected_tensors(c)) {
    Tensor t = gaussian_noise(shape, name_seed(name));
    double scale = 0.02, offset = 0.0;
    if (contains(name, "norm")) {
      scale = contains(name, ".weight") ? 0.1 : 0.05;
      offset = contains(name, ".weight") ? 1.0 : 0.0;
    } else if (contains(name, "embedding") || contains(name, "class_embedding")) {
      scale = 0.5;
    } else if (shape.size() >= 2) {
      int64_t fan_in = 1;
      for (size_t i = 1; i < shape.size(); ++i) fan_in *= shape[i];
      scale = 1.0 / std::sqrt(static_cast<double>(fan_in));
    }
    float* p = t.f32();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(offset + scale * p[i]);
    w->put(name, t);
  }
  w->set_metadata({{"raylight.clip_heads", std::to_string(c.heads)}});
  return w;
}

}  // namespace raylight
