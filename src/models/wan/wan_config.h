// Wan 2.1 DiT hyper-parameters, read off a checkpoint's tensor shapes. Checkpoints do not
// store the head count; every released Wan 2.1 model uses head_dim 128, so heads =
// dim / 128 unless the file's metadata says otherwise ("raylight.num_heads").
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "parallel/weight_store.h"

namespace raylight {

struct WanConfig {
  int64_t dim = 0, num_heads = 0, ffn_dim = 0, num_layers = 0;
  int64_t in_dim = 16, out_dim = 16, text_dim = 4096, freq_dim = 256, text_len = 512;
  int64_t clip_dim = 0;         // image-embedding width (1280); 0 for text-to-video
  // CLIP tokens in front of the text (image-to-video): one image's (257 for ViT-H/14; any
  // count an encoder makes), or for first-last-frame models (FLF2V) the two images' tokens
  // that `img_emb.emb_pos` [1, 514, 1280] positions, fixed by that tensor.
  int64_t image_tokens = 257;
  bool first_last_frame = false;  // img_emb.emb_pos present (Wan 2.1 FLF2V)
  float eps = 1e-6f;
  double rope_theta = 10000.0;
  PatchSize patch{};

  bool image_to_video() const { return clip_dim > 0; }
  // Takes the image condition y [in_dim - out_dim, F, H, W] (mask + image latent) beside
  // the noise: Wan 2.1 I2V/FLF2V and Wan 2.2 I2V A14B, which has no CLIP branch.
  bool takes_y() const { return in_dim > out_dim; }
  // Wan 2.2 TI2V (5B): the 48 latent channels of the Wan 2.2 VAE in and out, no CLIP branch.
  bool ti2v() const { return in_dim == 48 && out_dim == 48 && clip_dim == 0; }
  int64_t head_dim() const { return dim / num_heads; }
  // "Wan2.1 T2V 1.3B", "Wan2.1 I2V 14B", "Wan2.2 TI2V 5B", or "Wan2.1 T2V custom (dim 64, 2 layers)".
  std::string variant() const;
  int64_t parameter_count() const;
};

// Every tensor a checkpoint of this config holds, with its shape.
std::vector<std::pair<std::string, Shape>> wan_expected_tensors(const WanConfig& c);

// Reads the config from tensor shapes and checks every expected tensor is present with the
// expected shape; the error names the first tensor that does not fit.
WanConfig detect_wan_config(const WeightStore& weights);

// True when the store looks like a Wan DiT at all (used to name the family in `inspect`).
bool looks_like_wan(const WeightStore& weights);

}  // namespace raylight
