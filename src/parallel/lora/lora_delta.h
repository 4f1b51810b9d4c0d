// The arithmetic of one adapter, as ComfyUI's weight adapters define it (all in fp32 with
// double accumulation, strength applied by the caller):
//   LoRA  delta = (alpha / rank) * up @ down                  (scale 1 without alpha)
//   LoHa  delta = (alpha / rank1) * (w1_a @ w1_b) * (w2_a @ w2_b)   (elementwise product)
//   LoKr  delta = scale * kron(w1, w2), w_i = lokr_w_i or lokr_w_i_a @ lokr_w_i_b; scale is
//         alpha / (the rank of the last factored w_i), 1 when none is factored or no alpha
//   diff, diff_b  delta = the tensor;  set_weight  the weight becomes the tensor
#pragma once

#include "core/tensor.h"
#include "parallel/lora/lora_file.h"

namespace raylight {

// The shape of the full delta an adapter makes (before any reshape to its target).
Shape adapter_delta_shape(const LoraAdapter& a);
// alpha / rank for the factored kinds, 1 otherwise.
double adapter_scale(const LoraAdapter& a);
// The full delta (scale applied, strength not), fp32 host, reshaped to `target`'s shape
// (same element count, checked by the caller's plan).
Tensor adapter_delta(const LoraAdapter& a, const Shape& target);

// A low-rank adapter as side factors: y += (x @ down^T) @ up^T with strength * scale folded
// into up. down [r, in], up [out, r], fp32 host.
struct SideFactors {
  Tensor down, up;
};
SideFactors side_factors(const LoraAdapter& a, double strength);
// Factors of a delta on rows [offset, offset + rows of f.up) of a weight of `out_rows` rows,
// as factors of the whole weight (up zero on the other rows); `swap_halves` exchanges the
// two halves of the delta's rows first (ComfyUI's swap_scale_shift).
SideFactors place_rows(SideFactors f, int64_t offset, int64_t out_rows, bool swap_halves = false);
// A tensor's first and second halves of rows exchanged.
Tensor swap_row_halves(const Tensor& t);
// Several factor pairs of one weight as one pair of rank r1 + r2 + ... (one product each way).
SideFactors stack_factors(const std::vector<SideFactors>& parts);

}  // namespace raylight
