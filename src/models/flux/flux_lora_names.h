// The names LoRA trainers give Flux's weights besides the official ones (which the generic
// ComfyUI forms of DenoiserSpec::lora_stems cover, kohya's "lora_unet_double_blocks_0_img_attn_qkv"
// among them): diffusers' FluxTransformer2DModel names, as ComfyUI's flux_to_diffusers and
// model_lora_keys_unet map them, under "transformer." (diffusers, PEFT, SimpleTuner),
// "lycoris_" and "lora_transformer_" (OneTrainer) with dots made underscores. Diffusers splits
// what Flux fuses: to_q/to_k/to_v (and add_*_proj) are row runs of the double blocks' qkv,
// and to_q/to_k/to_v/proj_mlp of the single blocks' linear1.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "models/flux/flux_config.h"
#include "parallel/lora/lora_plan.h"

namespace raylight {

// LoRA key stems of diffusers' name for a whole official weight ("double_blocks.0.img_mod.lin.weight"
// -> "transformer.transformer_blocks.0.norm1.linear", ...); none for weights diffusers fuses
// differently or names otherwise.
std::vector<std::string> flux_diffusers_lora_stems(const std::string& weight);
// The stems that land on rows of a fused weight (and the final modulation, whose halves
// diffusers orders the other way round).
std::vector<std::pair<std::string, LoraTarget>> flux_lora_slices(const FluxConfig& c);

}  // namespace raylight
