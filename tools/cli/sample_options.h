// The sampling flags `sample` and `generate` share (size, steps, guidance, shift, seed,
// sampler), with the loaded family's defaults for what is not given.
#pragma once

#include <set>
#include <string>

#include "options.h"
#include "dist/mesh.h"
#include "models/family.h"
#include "pipeline/sample_job.h"

namespace raylight::cli {

extern const std::set<std::string> kSampleValued;

SampleOptions parse_sample_options(const Options& opt, const DenoiserSpec& spec);

// Prints the run's size and memory estimate (rank 0) and refuses a run that cannot fit in
// this host's memory (pipeline/run_estimate.h), before the model loads.
void check_run_estimate(const Options& opt, const DenoiserSpec& spec, const WeightStore& weights,
                        const SampleOptions& so, const ParallelLayout& layout);
// After the first step: how long all `total` steps will take at that pace (rank 0).
void report_first_step(double seconds, int total);

}  // namespace raylight::cli
