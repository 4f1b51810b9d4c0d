// Runs a planned sampling request on the loaded model, on every rank. It is the server's
// counterpart of pipeline/sample_latents (which seeds its own noise): the same flow
// schedule, samplers and guidance, plus what ComfyUI needs - caller-supplied noise, a
// starting latent for denoise < 1, explicit sigmas, a batch - and a hook before every step
// where the ranks agree on cancellation.
//
// A batch is spread over the data-parallel groups round by round (item r*dp + group), so
// with batch = dp and no caller noise the result is exactly `raylight sample --dp N`: item i
// uses seed + i. Ranks whose group has no item in the last round still take part in every
// step's hook, so all ranks make the same collective calls.
#pragma once

#include <functional>

#include "pipeline/wan_loader.h"
#include "server/sample_request.h"

namespace raylight::server {

struct StepHooks {
  // Called on every rank before every model evaluation (once per step); collective. It may
  // throw to stop the job (every rank must then throw alike).
  std::function<void()> before_step;
  // Called after each step with the steps done and the total over all rounds.
  std::function<void(int done, int total)> after_step;
};

// Latents [B, 16, F, H, W] (or [16, F, H, W] when the request was not batched), fp32.
Tensor run_sample(LoadedWan& wan, const SamplePlan& plan, const StepHooks& hooks);

}  // namespace raylight::server
