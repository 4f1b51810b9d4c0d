// Job memory estimates (see job_estimate.h). The factors are the pipeline's and deliberately
// generous: a refusal costs a client a smaller request, an allocation failure costs it the wait.
#include "server/job_estimate.h"

#include <unistd.h>

#include <cstdio>

#include "core/error.h"
#include "pipeline/run_estimate.h"

namespace raylight::server {
namespace {

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / 1073741824.0);
  return buf;
}

}  // namespace

// The memory model is the pipeline's (pipeline/run_estimate.h), shared with the CLI's runs.
JobMemory estimate_job_memory(const Shape& item, int64_t batch, const DenoiserSpec& spec, const ParallelLayout& layout,
                              bool activations_on_host) {
  JobMemory m;
  m.latent_bytes = sampler_state_bytes(item, batch);
  if (activations_on_host) m.activation_bytes = forward_activation_bytes(spec, item, layout.ulysses * layout.ring);
  return m;
}

double machine_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), size = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && size > 0 ? static_cast<double>(pages) * static_cast<double>(size) : 0.0;
}

void check_job_memory(const JobMemory& need, double limit_bytes) {
  if (limit_bytes <= 0 || need.total() <= limit_bytes) return;
  fail("this job needs about ", gib(need.total()), " per rank (latents ", gib(need.latent_bytes),
       need.activation_bytes > 0 ? ", activations " + gib(need.activation_bytes) : std::string(),
       "), more than the ", gib(limit_bytes), " this machine has; ask for a smaller size or batch");
}

}  // namespace raylight::server
