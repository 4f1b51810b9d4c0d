// The embedded tiny Flux VAE: the Flux VAE architecture at base width 32 (128 in the
// released model), widths 32/32/64/64, 16 latent channels, weights made from the documented
// noise generator (sampling/noise.h) per tensor name, so tests and `tiny-flux` decode
// without files. tests/fixtures/make_flux_vae_golden.py rebuilds the same weights.
#pragma once

#include <memory>

#include "models/vae/flux_vae_config.h"
#include "parallel/weight_store.h"

namespace raylight {

FluxVaeConfig flux_vae_tiny_config();
// Weights named and shaped exactly like ae.safetensors (fp32): conv weights N(0,1) /
// sqrt(fan_in), norm weights 1 + 0.1 N(0,1), biases 0.1 N(0,1).
std::unique_ptr<MemoryWeights> flux_vae_tiny_weights();

}  // namespace raylight
