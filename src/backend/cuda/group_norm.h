// GroupNorm for the image and video VAEs (Flux, Qwen-Image, HunyuanVideo) over frame-major
// clips [T, C, H, W]. A group can hold millions of values (4 channels of a 1024x1024 image),
// so its statistics are split over many blocks: each block reduces a fixed chunk to (count,
// mean, M2), one thread per group folds the chunks in a fixed order (Chan's formula, in
// double), and a pointwise pass applies (x - mean) * rstd * weight + bias and the optional
// SiLU. The result does not depend on scheduling: no atomics.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace raylight::cuda {

struct GroupNormGeom {
  int64_t T, C, S;   // frames, channels, pixels per channel plane
  int64_t groups;
  bool over_frames;  // one set of statistics per group over all frames, not per frame
};

// Floats of scratch group_norm needs (partial statistics, then mean and rstd per group).
int64_t group_norm_scratch_floats(const GroupNormGeom& g);
// weight / bias (nullable) [C]; scratch holds group_norm_scratch_floats(g) floats.
void group_norm(const __nv_bfloat16* x, const __nv_bfloat16* weight, const __nv_bfloat16* bias, __nv_bfloat16* y,
                const GroupNormGeom& g, float eps, bool silu, float* scratch, cudaStream_t s);

}  // namespace raylight::cuda
