// Rotary position tables. Model-independent math, so it lives beside the op set: video
// tokens (Wan, HunyuanVideo) split head_dim into frame / height / width parts; text
// encoders (Llama, Qwen) turn every pair by one position.
#pragma once

#include <array>
#include <cstdint>

#include "core/tensor.h"

namespace raylight {

struct RopeAxes {
  int frame, height, width;  // channels per axis; sum == head_dim, each even
};

// Wan's split: head_dim - 4*(head_dim/6) channels for frames, 2*(head_dim/6) each for
// height and width (128 -> 44/42/42).
RopeAxes wan_rope_axes(int head_dim);

// Table [count, head_dim/2, 2] of (cos, sin) for the tokens [first, first+count) of a
// (frames, height, width) grid in row-major order, whose positions start at `offset` on each
// axis (a reference image placed beside another, say). Axis pair k of an axis with `c`
// channels turns by angle pos * theta^(-2k/c). Computed in double, stored as fp32.
Tensor rope_table_3d(int64_t frames, int64_t height, int64_t width, RopeAxes axes,
                     double theta, int64_t first, int64_t count,
                     std::array<int64_t, 3> offset = {0, 0, 0});

// Table [count, head_dim/2, 2] of (cos, sin) for positions [first, first + count) of a
// sequence: pair i turns by pos * theta^(-2i/head_dim) (Llama's and Qwen's inv_freq; use it
// with RopePairs::Halves for their layout). Computed in double, stored as fp32.
Tensor rope_table_1d(int64_t first, int64_t count, int head_dim, double theta);

}  // namespace raylight
