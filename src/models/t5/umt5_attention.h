// umT5's relative position bias: bucketing of key-query offsets (bidirectional, log-spaced
// beyond num_buckets/4, as T5 defines it) and the per-offset table [heads, 2L-1] that
// Backend::attention_offset_bias adds to the scores. umT5 has one table per layer and does
// not scale scores by 1/sqrt(d) (T5 folds that into its weights).
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


}  // namespace raylight
