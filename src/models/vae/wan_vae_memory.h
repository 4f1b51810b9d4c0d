// The Wan 2.1 VAE decode's device memory, from its config and the region's size: what the
// tile size under --gpu-memory-limit is chosen from. bf16 activations (the GPU backend).
//
// The decode streams one latent frame at a time (4 video frames after the first), so
// memory does not grow with the clip's length. Per region of h x w latent pixels it holds
// (a) the causal caches: the last 2 input frames of every 3x3x3 conv and time_conv, at
// that conv's resolution and width; (b) the largest live set of one layer on one chunk
// (a residual block's input, normed copy, two conv outputs; an upsampler's upsampled input
// and conv output); (c) the conv's im2col scratch and product band (at most 256 MB each,
// ops_vae.cpp). The prefix through the middle attention runs once over the whole latent
// first (shared_decode_bytes): its caches and attention (the fp32 scores of one frame's
// pixels against themselves when the attention runs as products).
// Deliberately on the high side (x 1.15 for the caching allocator's rounding).
#pragma once

#include <cstdint>

#include "models/vae/wan_vae_config.h"

namespace raylight {

// The local suffix over a region of h x w latent pixels (context included).
double wan_vae_region_decode_bytes(const WanVaeConfig& c, int64_t h, int64_t w);
// The prefix over the whole latent, before any region.
double wan_vae_shared_decode_bytes(const WanVaeConfig& c, int64_t h, int64_t w);
// The weights in bf16.
double wan_vae_weight_bytes(const WanVaeConfig& c);

}  // namespace raylight
