// How much memory a sampling job needs on a rank, estimated from its request alone, so a
// job that cannot fit is refused before it is queued (an 8192x8192x4097 request used to
// pass every check and fail at allocation, after waiting its turn). The estimate is an
// upper bound by design - the latents every rank holds for the whole batch (the noise, the
// start, the sample, the prediction and the sampler's history) and, where the ranks compute
// on the CPU, one forward's activations for the rank's share of the sequence - and it is
// compared with the physical memory of rank 0's machine (ranks are alike).
#pragma once

#include <cstdint>

#include "dist/mesh.h"
#include "models/family.h"

namespace raylight::server {

struct JobMemory {
  double latent_bytes = 0;      // per rank
  double activation_bytes = 0;  // per rank, one forward
  double total() const { return latent_bytes + activation_bytes; }
};

JobMemory estimate_job_memory(const Shape& item, int64_t batch, const DenoiserSpec& spec, const ParallelLayout& layout,
                              bool activations_on_host);
// Physical memory of this machine in bytes.
double machine_memory_bytes();
// Throws an Error naming the estimate and the limit when the job cannot fit in `limit_bytes`.
void check_job_memory(const JobMemory& need, double limit_bytes);

}  // namespace raylight::server
