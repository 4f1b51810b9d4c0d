// Sampling flags shared by `sample` and `generate`. Every number is range-checked here, where
// the option is named: a value cast to a narrower type would wrap (--steps 4294967297 used
// to run one step), and sizes beyond 2^20 cannot be meant (they only overflow later).
#include "sample_options.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>

#include "backend/backend_select.h"
#include "core/error.h"
#include "dist/runtime.h"
#include "parallel_options.h"
#include "pipeline/run_estimate.h"

namespace raylight::cli {
namespace {
constexpr int64_t kMaxSize = int64_t{1} << 20;  // pixels per side, or frames
}  // namespace

const std::set<std::string> kSampleValued = {"width", "height", "frames", "steps", "cfg",
                                             "shift", "guidance", "seed", "sampler"};

SampleOptions parse_sample_options(const Options& opt, const DenoiserSpec& spec) {
  const SampleOptions d = sample_defaults(spec);
  SampleOptions so;
  so.size.width = opt.integer_in("width", d.size.width, 1, kMaxSize);
  so.size.height = opt.integer_in("height", d.size.height, 1, kMaxSize);
  so.size.frames = opt.integer_in("frames", d.size.frames, 1, kMaxSize);
  // A million steps is 8 MB of schedule and more than any flow sampler can use.
  so.steps = static_cast<int>(opt.integer_in("steps", d.steps, 1, 1000000));
  so.cfg = opt.number("cfg", d.cfg);
  // A two-expert model: --cfg-low for the low-noise expert, else --cfg for both, else the pair's.
  so.cfg_low = low_noise_cfg(spec, opt.has("cfg") ? std::optional<double>(so.cfg) : std::nullopt,
                             opt.has("cfg-low") ? std::optional<double>(opt.number("cfg-low", 0)) : std::nullopt);
  if (opt.has("shift")) {
    so.shift = opt.number("shift", 0);
    if (!(*so.shift > 0)) fail("option --shift must be a positive number, got ", opt.str("shift", ""));
  }
  if (opt.has("guidance")) so.guidance = opt.number("guidance", 0);
  so.seed = static_cast<uint64_t>(opt.integer_in("seed", 0, 0, INT64_MAX));
  const std::string sampler = opt.str("sampler", sampler_name(d.sampler));
  if (!sampler_from_name(sampler, &so.sampler))
    fail("unknown sampler '", sampler, "'; choose euler, unipc or dpmpp2m");
  return so;
}

void check_run_estimate(const Options& opt, const DenoiserSpec& spec, const WeightStore& weights,
                        const SampleOptions& so, const ParallelLayout& layout) {
  const int world = Runtime::world_size();
  const int sequence =
      layout.auto_sequence ? std::max(1, world / std::max(1, layout.cfg * layout.dp)) : layout.sequence();
  const RunEstimate e = estimate_run(spec, weights, so, sequence, layout.cfg, layout.dp, resolves_to_cpu(parse_device(opt)));
  const double available = available_host_bytes();
  if (Runtime::world_rank() == 0) std::fprintf(stderr, "%s\n", describe(e, available).c_str());
  refuse_if_unfit(e, available);
}

void report_first_step(double seconds, int total) {
  if (Runtime::world_rank() != 0 || total < 2) return;
  std::fprintf(stderr, "step 1 took %.2f s: %s\n", seconds, step_time_projection(seconds, total).c_str());
}

}  // namespace raylight::cli
