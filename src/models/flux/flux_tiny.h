// The embedded tiny Flux.1 dev: the real MMDiT at hidden 64 (2 heads of 32, 2 double + 2
// single blocks) reading the tiny umT5's 64-wide tokens and the tiny CLIP's 32-wide pooled
// vector,
// with weights made from the documented noise generator, so `--model tiny-flux` runs
// prompt-to-picture with no files (its text encoders and VAE are embedded too).
#pragma once

#include <memory>

#include "models/flux/flux_config.h"
#include "parallel/weight_store.h"

namespace raylight {

FluxConfig flux_tiny_config();
// Weights laid out like a Flux checkpoint (official names, fp32), tagged as embedded
// "tiny-flux": linears 1/sqrt(fan_in), norm scales 1 + 0.1 n, the rest 0.1 n.
std::unique_ptr<MemoryWeights> flux_tiny_weights();
// Its CLIP text encoder: the tiny CLIP (models/clip/clip_tiny.h, width 32) with a byte-level
// tokenizer made in code (GPT-2's byte table, the "</w>" pieces, two merges) carried as the
// store's tokenizer tensors, so it needs no files.
std::unique_ptr<MemoryWeights> flux_tiny_clip_weights();

}  // namespace raylight
