// The Flux VAE as diffusers stores it (black-forest-labs/FLUX.1-dev
// vae/diffusion_pytorch_model.safetensors: AutoencoderKL names such as
// "decoder.up_blocks.0.resnets.0.conv1.weight", "decoder.mid_block.attentions.0.to_q.weight")
// seen under the official names the Flux VAE code reads. The mapping is diffusers' own
// conversion read backwards: up_blocks count from the lowest resolution (up_blocks.i is
// up.(levels-1-i)), resnets are blocks, conv_shortcut is nin_shortcut, the mid attention's
// to_q/to_k/to_v/to_out.0 (linear [C, C]) are the 1x1 convolutions q/k/v/proj_out
// ([C, C, 1, 1], the same values). Nothing is copied: stored bytes are the file's.
#pragma once

#include <memory>
#include <string>

#include "parallel/weight_store.h"

namespace raylight {

// True when the store uses diffusers' AutoencoderKL names for a 2-D VAE.
bool is_diffusers_flux_vae(const WeightStore& weights);

// A view of `weights` (diffusers names) under the official names. Every tensor must map:
// one that does not (quant_conv of an SD VAE, a misspelt key) is refused naming it, as is
// an official name reached twice (up_blocks and old attention names together).
std::unique_ptr<WeightStore> diffusers_flux_vae_view(std::unique_ptr<WeightStore> weights, const std::string& source);
// The same over a store the caller keeps alive.
std::unique_ptr<WeightStore> diffusers_flux_vae_view(const WeightStore& weights, const std::string& source);

// The diffusers name of an official Flux VAE tensor name for a VAE of `levels` levels
// ("" when it has none): for messages about a diffusers file.
std::string flux_vae_diffusers_name(const std::string& official, int levels);

}  // namespace raylight
