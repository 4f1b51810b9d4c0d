// Run size and memory estimates (see run_estimate.h).
#include "pipeline/run_estimate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace raylight {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
// fp32 activations kept at once per token, in model widths (see the header).
constexpr double kActivationWidths = 16;
// Latent-sized fp32 tensors a sampler holds: the state, the noise, velocities (two with
// guidance), its history (up to three), the output.
constexpr double kLatentCopies = 8;

// A number from the first line of `path`, or -1.
double read_number(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word) || word == "max") return -1;
  try {
    return std::stod(word);
  } catch (const std::exception&) {
    return -1;
  }
}

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, bytes < 0.1 * kGiB ? "%.1f MiB" : "%.1f GiB",
                bytes < 0.1 * kGiB ? bytes / (1024.0 * 1024.0) : bytes / kGiB);
  return buf;
}

}  // namespace

double sampler_state_bytes(const Shape& item, int64_t batch) {
  double elements = 1;
  for (int64_t d : item) elements *= static_cast<double>(d);
  return elements * static_cast<double>(std::max<int64_t>(1, batch)) * 4.0 * kLatentCopies;
}

double forward_activation_bytes(const DenoiserSpec& spec, const Shape& item, int sequence_split) {
  const double tokens = static_cast<double>(spec.sequence_tokens(item));
  const double width = static_cast<double>(spec.attention_heads()) * static_cast<double>(spec.head_dim());
  return std::ceil(tokens / std::max(1, sequence_split)) * width * 4.0 * kActivationWidths;
}

RunEstimate estimate_run(const DenoiserSpec& spec, const WeightStore& weights, const SampleOptions& o,
                         int sequence_ranks, int cfg_split, int dp, bool activations_on_host) {
  RunEstimate e;
  const Shape item = spec.latent_shape(o.size);  // the size rules first, with their message
  e.tokens = spec.sequence_tokens(item);
  const int split = std::max(1, sequence_ranks);
  e.tokens_per_rank = (e.tokens + split - 1) / split;
  const bool guided = o.cfg != 1.0;
  e.forwards = static_cast<int64_t>(o.steps) * (guided && cfg_split < 2 ? 2 : 1);
  const double width = static_cast<double>(spec.attention_heads()) * static_cast<double>(spec.head_dim());
  const double context = static_cast<double>(spec.context_tokens());
  e.activation_bytes = forward_activation_bytes(spec, item, split);
  e.activations_on_host = activations_on_host;
  // A rank samples one item at a time; rank 0 gathers the dp items at the end. The schedule
  // is steps + 1 doubles, twice.
  e.host_bytes = sampler_state_bytes(item, 1) + sampler_state_bytes(item, std::max(1, dp)) / kLatentCopies +
                 16.0 * (o.steps + 1.0) + (activations_on_host ? e.activation_bytes : 0.0);
  double block_params = 0;
  int blocks = 0;
  for (const auto& name : weights.names()) {
    const int b = spec.block_of(name);
    if (b < 0) continue;
    blocks = std::max(blocks, b + 1);
    block_params += static_cast<double>(shape_numel(weights.shape(name)));
  }
  const double mine = static_cast<double>(e.tokens_per_rank), all = static_cast<double>(e.tokens);
  e.flops_per_forward = 2.0 * mine * block_params + blocks * width * (4.0 * mine * all + 4.0 * mine * context);
  return e;
}

double available_host_bytes() {
  double available = -1;
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  double kib = 0;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") available = kib * 1024.0;
  // A container's limit (cgroup v2, then v1), less what the group uses already.
  double limit = read_number("/sys/fs/cgroup/memory.max");
  double used = read_number("/sys/fs/cgroup/memory.current");
  if (limit < 0) {
    limit = read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    used = read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes");
  }
  if (limit > 0 && limit < 1e18) {
    const double room = std::max(0.0, limit - std::max(0.0, used));
    available = available < 0 ? room : std::min(available, room);
  }
  return available;
}

std::string describe(const RunEstimate& e, double available) {
  const double f = e.flops_per_forward;
  char flops[48];
  if (f < 1e12) std::snprintf(flops, sizeof flops, "%.3g GFLOP", f / 1e9);
  else if (f < 1e15) std::snprintf(flops, sizeof flops, "%.3g TFLOP", f / 1e12);
  else std::snprintf(flops, sizeof flops, "%.3g PFLOP", f / 1e15);
  std::ostringstream os;
  os << "estimate: " << e.tokens << " tokens";
  if (e.tokens_per_rank != e.tokens) os << " (" << e.tokens_per_rank << " per rank)";
  os << ", " << e.forwards << " forward" << (e.forwards == 1 ? "" : "s") << " of " << flops
     << ", host memory about " << gib(e.host_bytes) << " per rank";
  if (available > 0) os << " of " << gib(available) << " available";
  if (!e.activations_on_host) os << ", activations about " << gib(e.activation_bytes) << " per GPU";
  return os.str();
}

void refuse_if_unfit(const RunEstimate& e, double available) {
  if (available <= 0 || e.host_bytes <= available) return;
  fail("this run needs about ", gib(e.host_bytes), " of host memory per rank (", e.tokens,
       " tokens per forward) but only ", gib(available),
       " is available; use fewer frames or a smaller size, or split the sequence over more ranks "
       "(--ranks with --ulysses or --ring)");
}

std::string step_time_projection(double first_step_seconds, int64_t steps) {
  const double total = first_step_seconds * static_cast<double>(steps);
  char buf[96];
  if (total < 120) std::snprintf(buf, sizeof buf, "%.0f seconds", total);
  else if (total < 7200) std::snprintf(buf, sizeof buf, "%.0f minutes", total / 60);
  else if (total < 2 * 86400) std::snprintf(buf, sizeof buf, "%.1f hours", total / 3600);
  else if (total < 2 * 31557600.0) std::snprintf(buf, sizeof buf, "%.0f days", total / 86400);
  else std::snprintf(buf, sizeof buf, "%.0f years", total / 31557600.0);
  return std::string("about ") + buf + " for " + std::to_string(steps) + " steps";
}

}  // namespace raylight
