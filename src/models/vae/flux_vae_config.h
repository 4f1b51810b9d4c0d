// The Flux VAE's shape parameters and the tensor list they imply. Names are those of the
// official black-forest-labs/flux autoencoder, which ComfyUI's ae.safetensors keeps
// ("encoder.conv_in.weight", "encoder.down.1.block.0.nin_shortcut.weight",
// "decoder.up.3.upsample.conv.weight", "decoder.mid.attn_1.q.weight", ...). The
// architecture (a 2-D ResNet encoder/decoder, GroupNorm(32), one single-head attention in
// the middle, 2x down/up between levels) is fixed; a file chooses the widths, the number of
// levels and blocks, which are read from its shapes before every tensor is checked.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace raylight {

class WeightStore;

struct FluxVaeConfig {
  int64_t ch = 128;                         // channels of the full-resolution level
  std::vector<int64_t> ch_mult{1, 2, 4, 4};  // per level; 8x down for 4 levels
  int num_res_blocks = 2;                   // per encoder level; the decoder has one more
  int64_t z_channels = 16;                  // latent channels
  bool has_encoder = true;                  // decoder-only files decode
  int64_t top_dim() const { return ch * ch_mult.back(); }
  // Pixels per latent pixel along each side: 2^(levels - 1).
  int64_t downscale() const { return int64_t{1} << (ch_mult.size() - 1); }
};

// The latent the DiT sees is (mu - shift) * scale (official AutoEncoder.encode, ComfyUI's
// latent_formats.Flux); decoding starts from z / scale + shift.
constexpr double kFluxVaeScale = 0.3611;
constexpr double kFluxVaeShift = 0.1159;

// Every tensor the config implies, with its shape, in module order.
std::vector<std::pair<std::string, Shape>> flux_vae_expected_tensors(const FluxVaeConfig& c);

// Reads the widths from the shapes and checks every tensor. Errors name `source`, say that
// it is not a Flux VAE, and name the first missing or mismatched tensor.
FluxVaeConfig detect_flux_vae_config(const WeightStore& weights, const std::string& source);

}  // namespace raylight
