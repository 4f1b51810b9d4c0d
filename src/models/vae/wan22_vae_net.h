// The Wan 2.2 VAE's encoder and decoder as layer stacks in the module order of the official
// Encoder3d / Decoder3d (so tensor names line up), on 2x2-patchified pixels: the decoder
// makes 12 channels per pixel of half resolution, the encoder takes 12 (wan22_vae.h does
// the patchify on the host).
#pragma once

#include "models/vae/wan22_vae_config.h"
#include "models/vae/wan22_vae_layers.h"

namespace raylight {

// conv2, decoder.conv1, middle.0, middle.1: the part with a global layer (the middle
// attention), run over the whole latent; the suffix (middle.2, the levels, the head) is local.
VaeStack make_wan22_vae_decoder_prefix(const Wan22VaeConfig& c);
VaeStack make_wan22_vae_decoder_suffix(const Wan22VaeConfig& c);
VaeStack make_wan22_vae_decoder(const Wan22VaeConfig& c);
// Latent pixels of context that make a region's suffix decode exact in its middle.
int64_t wan22_vae_suffix_context(const Wan22VaeConfig& c);
// [T, 12, H/2, W/2] patchified video -> [T', 2 * z_dim, H/16, W/16] (mu, then log_var).
VaeStack make_wan22_vae_encoder(const Wan22VaeConfig& c);

}  // namespace raylight
