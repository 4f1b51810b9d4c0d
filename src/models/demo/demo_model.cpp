#include "models/demo/demo_model.h"

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "models/t5/umt5_tiny.h"
#include "parallel/checkpoint_weights.h"

extern "C" {
extern const unsigned char raylight_demo_dit_begin[], raylight_demo_dit_end[];
extern const unsigned char raylight_demo_vae_begin[], raylight_demo_vae_end[];
}

namespace raylight {
namespace {

std::unique_ptr<WeightStore> embedded(const char* name, const unsigned char* begin, const unsigned char* end) {
  return std::make_unique<CheckpointWeights>(
      Checkpoint(SafetensorsFile::view(name, begin, static_cast<size_t>(end - begin))));
}

}  // namespace

std::unique_ptr<WeightStore> demo_dit_weights() {
  return embedded("embedded demo DiT", raylight_demo_dit_begin, raylight_demo_dit_end);
}

std::unique_ptr<WeightStore> demo_vae_weights() {
  return embedded("embedded demo VAE", raylight_demo_vae_begin, raylight_demo_vae_end);
}

std::unique_ptr<WeightStore> demo_text_encoder_weights() { return umt5_tiny_weights(); }

}  // namespace raylight
