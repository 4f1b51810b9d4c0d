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
// Deterministic stand-in text embeddings [tokens, text_dim] for a prompt slot
// (0: the positive prompt, 1: the negative prompt).
Tensor wan_tiny_context(int slot);

}  // namespace raylight
