// The Flux VAE's networks over image batches [N, C, H, W] on the backend: the official
// autoencoder's Encoder (pixels -> 2 * z channels: mu, log-variance) and Decoder (z ->
// pixels), as Backend ops on weights fetched by their official names. Stateless: the
// networks are plain functions of their input.
#pragma once

#include "backend/backend.h"
#include "models/vae/flux_vae_config.h"
#include "parallel/weight_store.h"

namespace raylight {

// x [N, 3, H, W] (H, W multiples of the downscale) -> [N, 2z, H/8, W/8].
Tensor flux_vae_encoder(Backend& ops, WeightStore& weights, const FluxVaeConfig& c, const Tensor& x);
// z [N, z, h, w] (raw, unscaled latents) -> [N, 3, 8h, 8w] (unclamped).
Tensor flux_vae_decoder(Backend& ops, WeightStore& weights, const FluxVaeConfig& c, const Tensor& z);

}  // namespace raylight
