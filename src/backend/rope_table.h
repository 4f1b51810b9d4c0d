// Rotary position tables for video tokens. Model-independent math, so it lives beside
// the op set: Wan (and HunyuanVideo) split head_dim into frame / height / width parts.
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

}  // namespace raylight
