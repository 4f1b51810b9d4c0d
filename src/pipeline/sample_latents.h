// Text embeddings -> video latents: seeded noise, the flow schedule, a sampler, and
// classifier-free guidance around the model's velocity prediction.
#pragma once

#include <functional>
#include <string>

#include "dist/communicator.h"
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

// Rank groups that split sampling: with a cfg group of 2 its ranks compute the conditional
// and unconditional predictions and exchange them every step; a dp group of N samples N
// seeds (seed, seed+1, ...) and gathers them.
struct SampleGroups {
  Communicator* cfg = nullptr;
  Communicator* dp = nullptr;
};

// Samples latents: [16, F', H', W'], or [dp, 16, F', H', W'] with a dp group larger than one.
// `negative` may be undefined when cfg == 1 (no unconditional pass).
Tensor sample_wan_latents(WanModel& model, const Tensor& context, const Tensor& negative,
                          const SampleOptions& opts, const StepCallback& on_step = {},
                          const SampleGroups& groups = {});

}  // namespace raylight
