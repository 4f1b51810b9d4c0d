// The encoder and decoder of the Wan 2.1 VAE as layer stacks, built from the config in the
// module order of the official Encoder3d / Decoder3d (so tensor names line up), each
// wrapped with the top-level 1x1x1 conv it is always used with: the decoder starts with
// conv2, the encoder ends with conv1.
#pragma once

#include "models/vae/wan_vae_config.h"
#include "models/vae/wan_vae_layers.h"

namespace raylight {

// [T, z_dim, h, w] latent (de-normalised) -> [T', 3, 8h, 8w] video, chunk by chunk.
VaeStack make_wan_vae_decoder(const WanVaeConfig& c);
// The decoder cut after its last global layer, the middle attention (over all pixels of a
// frame): the prefix (conv2, decoder.conv1, middle.0, middle.1) runs over the whole latent,
// the suffix (middle.2, the upsamples, the head) has only local layers, so it can run on a
// region. prefix then suffix is make_wan_vae_decoder.
VaeStack make_wan_vae_decoder_prefix(const WanVaeConfig& c);
VaeStack make_wan_vae_decoder_suffix(const WanVaeConfig& c);
// Latent pixels around an output pixel that the suffix reads (its spatial receptive field,
// rounded up): a region decoded with that much context is exact in its middle.
int64_t wan_vae_suffix_context(const WanVaeConfig& c);
// [T, 3, H, W] video -> [T', 2*z_dim, H/8, W/8]: channels [0, z_dim) are mu, the rest log_var.
VaeStack make_wan_vae_encoder(const WanVaeConfig& c);

}  // namespace raylight
