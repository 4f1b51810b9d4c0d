// The Wan 2.2 VAE's shape parameters and the tensor list they imply (wan/modules/vae2_2.py,
// Wan2.2_VAE.pth; ComfyUI's wan2.2_vae.safetensors keeps the names). Against Wan 2.1 it
// works on 2x2-patchified pixels (12 channels), has 48 latent channels and separate encoder
// and decoder widths (160 and 256 released), groups each level's blocks under
// encoder.downsamples.N.downsamples.M / decoder.upsamples.N.upsamples.M with a
// parameter-free shortcut around the level (AvgDown3D / DupUp3D), and its decoder's
// upsamplers keep the channel count. Compression 4x16x16.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace raylight {

class WeightStore;

struct Wan22VaeConfig {
  int64_t z_dim = 48;
  int64_t enc_dim = 160;  // encoder width at full resolution
  int64_t dec_dim = 256;  // decoder width at full resolution
  std::vector<int64_t> dim_mult{1, 2, 4, 4};
  int num_res_blocks = 2;  // per encoder level; the decoder has one more
  // Per encoder level: whether its downsample halves time (the decoder mirrors it).
  std::vector<bool> temporal_downsample{false, true, true};
  bool has_encoder = true;
};

// One level of the encoder (Down_ResidualBlock) or decoder (Up_ResidualBlock).
struct Wan22VaeLevel {
  int index;        // encoder.downsamples.N / decoder.upsamples.N
  int64_t in_dim;   // channels in
  int64_t out_dim;  // channels of its blocks and out
  int blocks;       // residual blocks (then the resample, if any, at index `blocks`)
  bool resample;    // halves (encoder) / doubles (decoder) H and W
  bool temporal;    // and time
};

std::vector<Wan22VaeLevel> wan22_vae_encoder_levels(const Wan22VaeConfig& c);
std::vector<Wan22VaeLevel> wan22_vae_decoder_levels(const Wan22VaeConfig& c);
int64_t wan22_vae_encoder_top(const Wan22VaeConfig& c);  // encoder middle width
int64_t wan22_vae_decoder_top(const Wan22VaeConfig& c);  // decoder middle width

std::vector<std::pair<std::string, Shape>> wan22_vae_expected_tensors(const Wan22VaeConfig& c);

// True for the Wan 2.2 layout (the anchor tensors of its level blocks).
bool wan22_vae_layout(const WeightStore& weights);
// Widths from the shapes, then every tensor checked; errors name `source` and the tensor.
Wan22VaeConfig detect_wan22_vae_config(const WeightStore& weights, const std::string& source);

// Wan2_2_VAE's per-channel latent statistics: the DiT sees (mu - mean) / std.
extern const float kWan22VaeLatentMean[48];
extern const float kWan22VaeLatentStd[48];

}  // namespace raylight
