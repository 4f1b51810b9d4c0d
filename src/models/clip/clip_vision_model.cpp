#include "models/clip/clip_vision_model.h"

#include "core/error.h"
#include "models/clip/clip_image_preprocess.h"
#include "models/clip/clip_transformer.h"

namespace raylight {

ClipVisionModel::ClipVisionModel(std::unique_ptr<WeightStore> weights, Backend& backend)
    : weights_(std::move(weights)), ops_(backend) {
  if (!weights_) fail("CLIP vision encoder: no weights");
  config_ = detect_clip_config(*weights_, ClipTower::Vision);
  class_ = clip_host_weight(*weights_, config_.name("embeddings.class_embedding")).reshape({1, config_.width});
  positions_ = clip_host_weight(*weights_, config_.name("embeddings.position_embedding.weight"));
  weights_->bind(backend);
}

Tensor ClipVisionModel::encode_pixels(const Tensor& pixels) {
  const ClipConfig& c = config_;
  const int64_t S = c.image_size, P = c.patch, G = S / P, K = c.channels * P * P;
  if (pixels.dtype() != DType::F32 || pixels.shape() != Shape{c.channels, S, S})
    fail("CLIP vision encoder takes pixels fp32 [3, ", S, ", ", S, "]; got ", shape_str(pixels.shape()));
  // Patches as rows [G*G, 3*P*P] in the convolution weight's (channel, row, column) order.
  const Tensor src = pixels.to_f32();
  const float* p = src.f32();
  Tensor rows = Tensor::empty({G * G, K});
  float* r = rows.f32();
  for (int64_t gy = 0; gy < G; ++gy)
    for (int64_t gx = 0; gx < G; ++gx)
      for (int64_t ch = 0; ch < c.channels; ++ch)
        for (int64_t y = 0; y < P; ++y)
          for (int64_t x = 0; x < P; ++x)
            *r++ = p[(ch * S + gy * P + y) * S + gx * P + x];
  Tensor w = weights_->get(c.name("embeddings.patch_embedding.weight")).reshape({c.width, K});
  Tensor x = ops_.concat_rows(ops_.upload(class_), ops_.linear(ops_.upload(rows), w, {}));
  x = ops_.add(x, ops_.upload(positions_));
  x = ops_.layer_norm(x, weights_->get(c.name("pre_layrnorm.weight")), weights_->get(c.name("pre_layrnorm.bias")),
                      c.eps);
  for (int64_t i = 0; i + 1 < c.layers; ++i) x = clip_layer(ops_, *weights_, c, i, x, false);
  return ops_.download(x);
}

Tensor ClipVisionModel::encode_image(const Tensor& image) {
  return encode_pixels(clip_preprocess_image(image, config_.image_size));
}

}  // namespace raylight
