// The embedded demo model ("demo"): a tiny Wan 2.1 T2V DiT and Wan 2.1 VAE that Raylight
// trained itself (training/demo/) on procedural clips of coloured shapes, conditioned on the
// embedded tiny umT5 exactly as the engine computes it. Unlike "tiny" (random weights, for
// tests) its videos show a grammar prompt's background, object colour and growing or
// shrinking, in a few seconds on a CPU (not the direction of motion, nor crisp shapes:
// training/demo/README.md has the measurements). The weights are ordinary safetensors files in the
// official key layouts, compiled into the binary (demo_weights.S) and opened through the same
// reader and stores as any checkpoint; their metadata carries the model card (sampling
// defaults and the prompt vocabulary, models/model_card.h).
#pragma once

#include <memory>

#include "parallel/weight_store.h"

namespace raylight {

std::unique_ptr<WeightStore> demo_dit_weights();
std::unique_ptr<WeightStore> demo_vae_weights();
// The text encoder it was trained with: the embedded tiny umT5.
std::unique_ptr<WeightStore> demo_text_encoder_weights();

}  // namespace raylight
