#include "sample_options.h"

#include "core/error.h"

namespace raylight::cli {

const std::set<std::string> kSampleValued = {"width", "height", "frames", "steps", "cfg",
                                             "shift", "seed", "sampler"};

SampleOptions parse_sample_options(const Options& opt, bool tiny) {
  SampleOptions so;
  so.width = opt.integer("width", tiny ? 128 : 832);
  so.height = opt.integer("height", tiny ? 128 : 480);
  so.frames = opt.integer("frames", tiny ? 9 : 81);
  so.steps = static_cast<int>(opt.integer("steps", tiny ? 10 : 30));
  so.cfg = opt.number("cfg", 5.0);
  so.shift = opt.number("shift", 5.0);
  const int64_t seed = opt.integer("seed", 0);
  if (seed < 0) fail("--seed must be non-negative, got ", seed);
  so.seed = static_cast<uint64_t>(seed);
  const std::string sampler = opt.str("sampler", "unipc");
  if (!sampler_from_name(sampler, &so.sampler))
    fail("unknown sampler '", sampler, "'; choose euler, unipc or dpmpp2m");
  return so;
}

}  // namespace raylight::cli
