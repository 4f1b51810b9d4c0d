// The layer CLIP's text and vision towers share, written against the Backend op set:
//   x += out_proj(attention(q, k, v of layer_norm1(x)))   (causal for text, full for vision)
//   x += fc2(act(fc1(layer_norm2(x))))                     (quick_gelu or erf GELU)
// pre-LN, eps 1e-5, biases on every product, heads scaled by 1/sqrt(head_dim).
#pragma once

#include "backend/backend.h"
#include "models/clip/clip_config.h"
#include "parallel/weight_store.h"

namespace raylight {

// Layer `index` of the tower over x [L, width] on the backend.
Tensor clip_layer(Backend& ops, WeightStore& weights, const ClipConfig& c, int64_t index, const Tensor& x,
                  bool causal);

// A small stored tensor (embedding table, class token) as host fp32 with its scale applied;
// fp8 NaN codes read as 0 (ComfyUI's nan_to_num). Errors on other non-finite values.
Tensor clip_host_weight(const WeightStore& weights, const std::string& name);

}  // namespace raylight
