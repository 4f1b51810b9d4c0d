// What a sampling run will cost, said before it starts, and refused when it cannot fit.
//
// A --frames 100001 or a --width of 2^20 used to start a run that could never finish (or
// that the kernel would kill mid-way). From the header alone (the spec) and the options, the
// run's size is known: the joint sequence's tokens, the forwards it takes, and the host
// memory each rank needs. The memory model is written once here (the server's job check
// uses it too) and is deliberately on the high side: the latent-sized tensors a sampler
// holds, and one forward's fp32 activations on the CPU backend (the hidden state, q, k, v,
// the attention output, the FFN's hidden layer, norms: 16 model widths per token); the
// latent-codec (VAE) decode is not counted. A run whose estimate exceeds the memory this
// process may use (MemAvailable, and a cgroup's limit in a container) is refused with the
// numbers; any other run prints them, with the compute per forward (2 x tokens x block
// parameters for the linear layers, 4 x tokens^2 x width per block for self-attention).
// Seconds depend on the machine: the CLI projects them from the first step
// (`step_time_projection`).
#pragma once

#include <cstdint>
#include <string>

#include "dist/mesh.h"
#include "models/family.h"
#include "pipeline/sample_job.h"

namespace raylight {

struct RunEstimate {
  int64_t tokens = 0;            // joint sequence tokens of one latent item
  int64_t tokens_per_rank = 0;   // after the sequence split
  int64_t forwards = 0;          // model evaluations each rank makes
  double host_bytes = 0;         // per rank: latents, sampler state, schedule (+ activations on the CPU)
  double activation_bytes = 0;   // per rank, in the backend's memory
  bool activations_on_host = true;
  double flops_per_forward = 0;  // per rank: block weights x tokens, plus attention
};

// Bytes of the latent-sized fp32 tensors a sampler holds for `batch` items (the noise, the
// start, the sample, the prediction, its history, the output).
double sampler_state_bytes(const Shape& item, int64_t batch);
// Bytes of one forward's fp32 activations on a rank holding 1/`sequence_split` of the tokens.
double forward_activation_bytes(const DenoiserSpec& spec, const Shape& item, int sequence_split);

// `sequence_ranks` is ulysses x ring (the sequence split), `cfg_split` 2 with --cfg-parallel.
// `weights` (the checkpoint's, read from its header) give the block count and parameters.
RunEstimate estimate_run(const DenoiserSpec& spec, const WeightStore& weights, const SampleOptions& options,
                         int sequence_ranks, int cfg_split, int dp, bool activations_on_host);

// Bytes this process may still allocate (MemAvailable, capped by a cgroup v2/v1 limit).
double available_host_bytes();

// "estimate: 32760 tokens (8190 per rank), 60 forwards, about 3.1 GiB of host memory per
// rank (of 120 GiB available)".
std::string describe(const RunEstimate& e, double available);

// Error when the estimate does not fit in `available` bytes, saying what would help.
void refuse_if_unfit(const RunEstimate& e, double available);

// "about 3 hours 20 minutes for 1000 steps" from the seconds the first step took.
std::string step_time_projection(double first_step_seconds, int64_t steps);

}  // namespace raylight
