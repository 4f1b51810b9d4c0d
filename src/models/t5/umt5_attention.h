// T5-style self-attention with a relative position bias, which the Backend's attention op
// cannot express (it has no bias input and always scales scores by 1/sqrt(head_dim), while T5
// folds that scale into its q weights). So the scores are computed here, over host copies of
// q, k and v: one round trip per layer, which the CPU backend makes for free and which is
// affordable elsewhere because a prompt is encoded once, unpadded (tens of tokens, <= 512).
//
// A GPU path would keep q/k/v on the device and give a flash-attention kernel the bias by
// relative offset (this file's [heads, 2L-1] table; a kernel reads bias[h][j - i + L - 1]
// while it adds the scores), with the softmax scale set to 1. Until the Backend grows such an
// op, biased_attention() is that kernel's reference.
#pragma once

#include <cstdint>

#include "backend/backend.h"

namespace raylight {

// T5's bidirectional bucket of the relative position `key - query`: buckets [0, n/2) for
// keys at or before the query, [n/2, n) after it; within each half, distances below n/4 get
// their own bucket and longer ones share log-spaced buckets up to max_distance. Computed in
// float32 like the PyTorch references, so boundary distances land in the same bucket.
int64_t umt5_relative_bucket(int64_t relative_position, int64_t num_buckets, int64_t max_distance);

// Host fp32 [heads, 2L-1]: entry (h, r + L - 1) is the bias of head h for key - query = r,
// taken from a layer's relative_attention_bias (host fp32 [num_buckets, heads]).
Tensor umt5_position_bias(const Tensor& relative_attention_bias, int64_t length,
                          int64_t max_distance);

// softmax(q k^T + bias) v per head, without 1/sqrt(d) scaling. q, k, v [L, heads, head_dim]
// on `ops`; bias from umt5_position_bias. Returns [L, heads, head_dim] on `ops`.
Tensor biased_attention(Backend& ops, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& bias_by_offset);

}  // namespace raylight
