// Job memory estimates (see job_estimate.h). The factors are deliberately generous: a
// refusal costs a client a smaller request, an allocation failure costs it the wait.
#include "server/job_estimate.h"

#include <unistd.h>

#include <cstdio>

#include "core/error.h"

namespace raylight::server {
namespace {

constexpr double kLatentCopies = 8;       // noise, start, sample, prediction, sampler history, output
constexpr double kActivationWidths = 16;  // hidden state, q/k/v, attention out, FFN (several widths), norms

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / 1073741824.0);
  return buf;
}

}  // namespace

JobMemory estimate_job_memory(const Shape& item, int64_t batch, const DenoiserSpec& spec, const ParallelLayout& layout,
                              bool activations_on_host) {
  double item_elems = 1;
  for (int64_t d : item) item_elems *= static_cast<double>(d);
  JobMemory m;
  m.latent_bytes = item_elems * static_cast<double>(batch) * 4.0 * kLatentCopies;
  if (activations_on_host) {
    const double tokens = static_cast<double>(spec.sequence_tokens(item));
    const double width = static_cast<double>(spec.attention_heads() * spec.head_dim());
    const double split = static_cast<double>(std::max(1, layout.ulysses * layout.ring));
    m.activation_bytes = tokens * width * 4.0 * kActivationWidths / split;
  }
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
