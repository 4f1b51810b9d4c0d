// Text embeddings -> video latents: seeded noise, the flow schedule, a sampler, and
// classifier-free guidance around the model's velocity prediction.
#pragma once

#include <functional>
#include <string>

#include "models/wan/wan_model.h"
#include "sampling/samplers.h"

namespace raylight {

struct SampleOptions {
  int64_t width = 832, height = 480, frames = 81;
  int steps = 30;
  double cfg = 5.0;
  double shift = 5.0;
  uint64_t seed = 0;
  SamplerKind sampler = SamplerKind::UniPC;
};

// Latent shape for a video: [16, 1 + (frames-1)/4, height/8, width/8]. Errors when the size
// does not fit the VAE's 4x8x8 stride and the DiT's 2x2 patches.
Shape wan_latent_shape(const WanConfig& config, const SampleOptions& opts);

// Samples latents. `negative` may be undefined when cfg == 1 (no unconditional pass).
Tensor sample_wan_latents(WanModel& model, const Tensor& context, const Tensor& negative,
                          const SampleOptions& opts, const StepCallback& on_step = {});

}  // namespace raylight
