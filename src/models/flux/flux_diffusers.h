// A Flux.1 transformer as diffusers stores it (FluxTransformer2DModel:
// "transformer/diffusion_pytorch_model*.safetensors", its fine-tunes and fp8 exports) seen
// under the official names the Flux model reads. The mapping is diffusers' own conversion
// (scripts/convert_flux_to_diffusers.py, single_file_utils) read backwards:
//   - fused weights are row runs of several diffusers tensors: a double block's
//     img_attn.qkv = attn.to_q | to_k | to_v, txt_attn.qkv = attn.add_q_proj | add_k_proj |
//     add_v_proj, a single block's linear1 = attn.to_q | to_k | to_v | proj_mlp (weights and
//     biases alike);
//   - final_layer.adaLN_modulation.1 is norm_out.linear with its halves swapped
//     (AdaLayerNormContinuous splits [scale, shift], the official code [shift, scale]);
//   - the rest are renames (norm1.linear = img_mod.lin, attn.norm_q.weight =
//     img_attn.norm.query_norm.scale, ff.net.0.proj = img_mlp.0, x_embedder = img_in, ...).
// Nothing is copied at load: a renamed tensor is the file's view, and a fused one is read
// piece by piece from the file's tensors when asked for (read_stored reads only the pieces
// a byte range covers, so an FSDP rank reads only its shard). Pieces of one fused tensor
// that differ in dtype or fp8 scale are widened (fp8/bf16 pieces to bf16, others to fp32)
// with each piece's scale applied, since one tensor carries one scale.
// The head count, which the tensors do not hold, comes from the diffusers config.json beside
// the files (num_attention_heads; attention_head_dim and axes_dims_rope are checked against
// it) as the raylight.num_heads metadata entry; without one, heads are 128 wide as in Flux.1.
#pragma once

#include <memory>
#include <string>

#include "parallel/weight_store.h"

namespace raylight {

// True when the store uses diffusers' FluxTransformer2DModel names.
bool is_diffusers_flux(const WeightStore& weights);

// A view of `weights` (diffusers names) under the official names. Every tensor must map: one
// that does not is refused naming it, as are a fused weight with a piece missing or pieces
// whose shapes do not fit together, and config.json numbers that contradict the tensors.
std::unique_ptr<WeightStore> diffusers_flux_view(std::unique_ptr<WeightStore> weights, const std::string& source);
// The same over a store the caller keeps alive.
std::unique_ptr<WeightStore> diffusers_flux_view(const WeightStore& weights, const std::string& source);

}  // namespace raylight
