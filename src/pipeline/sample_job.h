// The one sampling path, used by `raylight sample`, `raylight generate` and the server:
// a SampleJob (checked conditioning, the start - seeded or caller noise, a latent to start
// from below sigma 1 - the noise levels, guidance, sampler, a batch) runs on a loaded model
// over its rank groups. With a cfg group of 2 its ranks compute the conditional and
// unconditional predictions and exchange them every step; a dp group of N samples a batch
// round by round, item r*N + group, and gathers the items. Guidance is
// v = v_neg + cfg (v_pos - v_neg) per element in double, stored as fp32.
//
// Item i starts from noise seeded with seed + i (or the caller's noise), so a batch of N on
// N data-parallel groups is N seeds sampled at once. Groups with no item in the last round
// sample the last item again and drop it, so every rank makes the same collectives (step
// hooks, FSDP gathers over all ranks).
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "models/family.h"
#include "pipeline/model_loader.h"
#include "sampling/samplers.h"

namespace raylight {

// Which expert of a two-expert model samples: the one the pair's boundary picks per step, or
// one of them for every step (ComfyUI's KSamplerAdvanced given one expert of the pair).
enum class ExpertChoice { ByBoundary, High, Low };

struct SampleJob {
  Conditioning positive, negative;  // checked by the spec; negative empty when cfg == 1
  Tensor latent, noise;             // fp32 [batch, item...] or undefined (zeros / seeded)
  Shape item_shape;                 // one latent item, e.g. [16, F, H, W]
  int64_t batch = 1;
  bool batched_output = false;      // answer [batch, item...] rather than [item...]
  std::vector<double> sigmas;
  double cfg = 5.0;
  // A two-expert model's guidance while the low-noise expert runs (unset: cfg).
  std::optional<double> cfg_low;
  SamplerKind sampler = SamplerKind::UniPC;
  uint64_t seed = 0;
  ExpertChoice expert = ExpertChoice::ByBoundary;
  // false: `latent` is already the sample at sigmas[0] (ComfyUI's add_noise disabled: a part
  // of a schedule continued from an earlier part's leftover noise); no noise is mixed in.
  bool add_noise = true;

  int steps() const { return static_cast<int>(sigmas.size()) - 1; }
};

struct SampleHooks {
  // Called on every rank before every model evaluation (once per step); collective. It may
  // throw to stop the job (every rank must then throw alike).
  std::function<void()> before_step;
  // Called after each step with the steps done and the total over all rounds.
  std::function<void(int done, int total)> after_step;
};

// Latents [batch, item...] (or [item...] when not batched_output), fp32, on every rank.
// A model with a low-noise expert switches to it once 1000 * sigma falls below the pair's
// boundary (guidance cfg_low from then on), unless the job names one expert. Where the spec
// pins part of the latent (latent_pin: TI2V's first frame), the start and every step's
// sample get it written back.
Tensor run_sample_job(LoadedModel& model, const SampleJob& job, const SampleHooks& hooks = {});

// The options a person gives: a size, steps, guidance, shift, seed and sampler; the
// family's defaults fill what is not given.
struct SampleOptions {
  OutputSize size;
  int steps = 30;
  double cfg = 5.0;
  std::optional<double> cfg_low;   // two-expert models: the low-noise expert's guidance
  std::optional<double> shift;     // unset: the family's rule for the size
  std::optional<double> guidance;  // unset: the family's default (models that take it)
  uint64_t seed = 0;
  SamplerKind sampler = SamplerKind::UniPC;
};
SampleOptions sample_defaults(const DenoiserSpec& spec);

// A job of `batch` items seeded seed, seed+1, ... from options and one prompt pair's
// conditioning (checked here against the spec; `negative` may be empty when cfg == 1).
// A model with a "guidance" input gets the options' guidance (or its default) as that
// tensor; guidance given to a model without one is refused.
SampleJob make_sample_job(const DenoiserSpec& spec, const SampleOptions& options, const Conditioning& positive,
                          const Conditioning& negative, int64_t batch = 1);
// A two-expert model's low-noise guidance: `cfg_low` when given, else `cfg` when given (one
// value for both), else the pair's default; unset for a one-model family, which refuses a
// given `cfg_low`.
std::optional<double> low_noise_cfg(const DenoiserSpec& spec, std::optional<double> cfg, std::optional<double> cfg_low);
// `conditioning` with the guidance input set where the model has one; `given` overrides the
// family's default. Errors when guidance is given to a model without the input.
Conditioning with_guidance(const DenoiserSpec& spec, Conditioning conditioning, std::optional<double> given);

}  // namespace raylight
