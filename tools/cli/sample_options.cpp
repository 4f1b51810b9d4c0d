#include "sample_options.h"

#include "core/error.h"

namespace raylight::cli {

const std::set<std::string> kSampleValued = {"width", "height", "frames", "steps", "cfg",
                                             "shift", "guidance", "seed", "sampler"};

SampleOptions parse_sample_options(const Options& opt, const DenoiserSpec& spec) {
  const SampleOptions d = sample_defaults(spec);
  SampleOptions so;
  so.size.width = opt.integer("width", d.size.width);
  so.size.height = opt.integer("height", d.size.height);
  so.size.frames = opt.integer("frames", d.size.frames);
  so.steps = static_cast<int>(opt.integer("steps", d.steps));
  so.cfg = opt.number("cfg", d.cfg);
  if (opt.has("shift")) so.shift = opt.number("shift", 0);
  if (opt.has("guidance")) so.guidance = opt.number("guidance", 0);
  const int64_t seed = opt.integer("seed", 0);
  if (seed < 0) fail("--seed must be non-negative, got ", seed);
  so.seed = static_cast<uint64_t>(seed);
  const std::string sampler = opt.str("sampler", sampler_name(d.sampler));
  if (!sampler_from_name(sampler, &so.sampler))
    fail("unknown sampler '", sampler, "'; choose euler, unipc or dpmpp2m");
  return so;
}

}  // namespace raylight::cli
