// The embedded default model: a Wan-architecture DiT small enough to sample in seconds
// on a CPU, with weights made deterministically from the documented noise generator, so
// `raylight sample --model tiny` needs no files and gives the same bytes everywhere.
#pragma once

#include <memory>

#include "models/wan/wan_config.h"
#include "parallel/weight_store.h"

namespace raylight {

WanConfig wan_tiny_config();
// Weights laid out exactly like a Wan checkpoint (same names and shapes, fp32).
std::unique_ptr<MemoryWeights> wan_tiny_weights();
// "tiny-ti2v": the tiny model shaped like Wan 2.2 TI2V-5B (48 latent channels in and out,
// for the Wan 2.2 VAE), same recipe.
WanConfig wan_tiny_ti2v_config();
std::unique_ptr<MemoryWeights> wan_tiny_ti2v_weights();
// The same recipe for any config (bench/wan_numerics.py reproduces it for the GPU
// numerics check): tensor `name` is gaussian_noise(name_seed(name)) scaled like a trained
// network (linears 1/sqrt(fan_in), norm weights 1 + 0.1 n, the rest 0.1 n).
std::unique_ptr<MemoryWeights> wan_random_weights(const WanConfig& c);
// Deterministic stand-in text embeddings [tokens, text_dim] for a prompt slot
// (0: the positive prompt, 1: the negative prompt).
Tensor wan_tiny_context(int slot);

}  // namespace raylight
