// The sampling flags `sample` and `generate` share (size, steps, guidance, shift, seed,
// sampler), with the tiny model's small defaults or the real models' 832x480x81.
#pragma once

#include <set>
#include <string>

#include "options.h"
#include "pipeline/sample_latents.h"

namespace raylight::cli {

extern const std::set<std::string> kSampleValued;

SampleOptions parse_sample_options(const Options& opt, bool tiny_model);

}  // namespace raylight::cli
