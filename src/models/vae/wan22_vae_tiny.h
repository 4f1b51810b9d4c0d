// The embedded tiny Wan 2.2 VAE: the released architecture with 48 latent channels at
// encoder and decoder width 4 (160 / 256 released), weights from the documented noise
// generator (one stream per tensor name), so tests and "tiny-ti2v" decode without files.
// tests/fixtures/make_wan22_vae_golden.py makes the same weights in PyTorch.
#pragma once

#include <memory>

#include "models/vae/wan22_vae_config.h"
#include "parallel/weight_store.h"

namespace raylight {

Wan22VaeConfig wan22_vae_tiny_config();
std::unique_ptr<MemoryWeights> wan22_vae_tiny_weights();

}  // namespace raylight
