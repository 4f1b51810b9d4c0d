// The sampling flags `sample` and `generate` share (size, steps, guidance, shift, seed,
// sampler), with the loaded family's defaults for what is not given.
#pragma once

#include <set>
#include <string>

#include "options.h"
#include "models/family.h"
#include "pipeline/sample_job.h"

namespace raylight::cli {

extern const std::set<std::string> kSampleValued;

SampleOptions parse_sample_options(const Options& opt, const DenoiserSpec& spec);

}  // namespace raylight::cli
