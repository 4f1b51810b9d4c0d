// The CLIP vision tower (ViT-H/14 as ComfyUI's clip_vision_h.safetensors holds it): patch
// embedding (a 14x14 stride-14 convolution, done as one product over the patches), class
// token, position embeddings, pre_layrnorm, full-attention pre-LN layers with erf GELU.
// Wan's image-to-video DiT reads the penultimate layer's tokens (clip.py's use_31_block,
// ComfyUI's penultimate_hidden_states), before post_layernorm: that is what encode() gives.
#pragma once

#include <memory>

#include "backend/backend.h"
#include "models/clip/clip_config.h"
#include "parallel/weight_store.h"

namespace raylight {

class ClipVisionModel {
 public:
  // Detects the config (errors name the first tensor that does not fit), binds the weights.
  ClipVisionModel(std::unique_ptr<WeightStore> weights, Backend& backend);

  const ClipConfig& config() const { return config_; }
  // Preprocessed pixels [3, image_size, image_size] -> host fp32 [patches + 1, width].
  Tensor encode_pixels(const Tensor& pixels);
  // An image, host fp32 [3, H, W] in [-1, 1] (clip_image_preprocess.h), -> encode_pixels.
  Tensor encode_image(const Tensor& image);

 private:
  std::unique_ptr<WeightStore> weights_;
  Backend& ops_;
  ClipConfig config_;
  Tensor class_, positions_;  // host fp32 [1, width], [positions, width]
};

}  // namespace raylight
