// Flux.1 DiT hyper-parameters, read off a checkpoint's tensor shapes (black-forest-labs'
// key names, which ComfyUI's files keep): width from img_in, MLP width from the first
// double block, block counts from the names, dev or schnell from the guidance_in tensors.
// Checkpoints do not store the head count: 128-wide heads (24 in Flux.1), or the
// `raylight.num_heads` metadata entry (tiny models). The RoPE axes split a head as Flux.1's
// 16/56/56: head_dim/8 channels for the first axis, the rest halved.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "backend/rope_table.h"
#include "core/tensor.h"
#include "parallel/weight_store.h"

namespace raylight {

struct FluxConfig {
  int64_t hidden = 0, num_heads = 0, mlp_hidden = 0, depth = 0, depth_single = 0;
  int64_t in_channels = 64, out_channels = 64, context_in = 4096, vec_in = 768;
  int64_t latent_channels = 16;  // in_channels / (2x2 patches)
  bool guidance_embed = true;    // dev (and Kontext, Krea); schnell has none
  double rope_theta = 10000.0;
  float eps = 1e-6f;

  int64_t head_dim() const { return hidden / num_heads; }
  RopeAxes rope_axes() const;
  int64_t blocks() const { return depth + depth_single; }
  // "Flux.1 dev", "Flux.1 schnell", or "Flux.1 dev-like custom (hidden 64, 2+2 blocks)".
  std::string variant() const;
};

// Every tensor a checkpoint of this config holds, with its shape.
std::vector<std::pair<std::string, Shape>> flux_expected_tensors(const FluxConfig& c);

// True when the store looks like a Flux DiT at all (anchor tensors).
bool looks_like_flux(const WeightStore& weights);

// Reads the config from tensor shapes and checks every expected tensor; the error names the
// first tensor that is missing or has the wrong shape.
FluxConfig detect_flux_config(const WeightStore& weights);

}  // namespace raylight
