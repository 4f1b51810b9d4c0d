// The Wan 2.1 VAE's shape parameters and the tensor list they imply. Names are those of
// the official Wan2.1_VAE.pth state dict, which ComfyUI's wan_2.1_vae.safetensors keeps
// ("decoder.conv1.weight", "decoder.upsamples.3.time_conv.weight", "conv2.weight", ...).
// The architecture (levels, blocks per level, which levels resample time) is fixed by the
// released model; a checkpoint only chooses the widths, which are read from its shapes and
// then every tensor is checked, so a different VAE is refused by name before any compute.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace raylight {

class WeightStore;

struct WanVaeConfig {
  int64_t z_dim = 16;     // latent channels (the DiT's in/out channels)
  int64_t base_dim = 96;  // channels of the full-resolution level
  std::vector<int64_t> dim_mult{1, 2, 4, 4};
  int num_res_blocks = 2;  // per encoder level; the decoder has one more
  // Per encoder level boundary: whether that downsample also halves time (the decoder
  // mirrors it: upsamples 0 and 1 double time, upsample 2 does not).
  std::vector<bool> temporal_downsample{false, true, true};
  bool has_encoder = true;  // decoder-only files are accepted for decoding
};

// One entry of encoder.downsamples / decoder.upsamples, in module order.
struct WanVaeStage {
  enum class Kind { Residual, Resample };
  Kind kind;
  int index;        // position in the sequence (the number in the tensor names)
  int64_t in_dim;   // input channels
  int64_t out_dim;  // output channels (Resample: of its spatial conv)
  bool temporal;    // Resample only: also halves (encoder) or doubles (decoder) time
};

std::vector<WanVaeStage> wan_vae_encoder_stages(const WanVaeConfig& c);
std::vector<WanVaeStage> wan_vae_decoder_stages(const WanVaeConfig& c);
// Channels of the lowest-resolution level (middle blocks and attention).
int64_t wan_vae_middle_dim(const WanVaeConfig& c);

// Every tensor the config implies, with its shape, in module order (encoder tensors and
// the top-level conv1 only when has_encoder).
std::vector<std::pair<std::string, Shape>> wan_vae_expected_tensors(const WanVaeConfig& c);

// Reads the widths from the shapes and checks every tensor. Errors name `source`, say that
// it is not a Wan 2.1 VAE, and name the first missing or mismatched tensor.
WanVaeConfig detect_wan_vae_config(const WeightStore& weights, const std::string& source);

// Per-channel statistics of the released VAE's latents (wan/modules/vae.py, WanVAE): the
// DiT works on (mu - mean) / std, so decoding starts from z * std + mean.
extern const float kWanVaeLatentMean[16];
extern const float kWanVaeLatentStd[16];

}  // namespace raylight
