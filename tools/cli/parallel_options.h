// The parallel flags every model-running command shares:
//   --ranks N (CPU ranks; starts them through mpirun), --ulysses N, --ring N,
//   --cfg-parallel, --dp N, --timeout SECONDS (per collective), --fsdp, --offload.
#pragma once

#include <set>
#include <string>

#include "backend/backend_select.h"
#include "dist/mesh.h"
#include "pipeline/model_loader.h"
#include "options.h"

namespace raylight::cli {

extern const std::set<std::string> kParallelValued;
extern const std::set<std::string> kParallelFlags;
extern const char* const kParallelHelp;

// Reads the layout and applies --timeout. Without --ulysses/--ring the sequence split is
// left to the loader (Ulysses as far as the heads allow, Ring for the rest).
ParallelLayout parse_parallel(const Options& opt);
// --device / --gpus.
BackendChoice parse_device(const Options& opt);
// --attention cudnn|own|fp8 ("" when not given): make_backend's attention argument.
std::string parse_attention(const Options& opt);
// --fsdp / --offload / --gpu-memory-limit (the cap is set before any weight is placed).
WeightPlacement parse_placement(const Options& opt);
// Gathers every rank's peak weight and process memory to rank 0, which prints them.
void report_peak_memory(const LoadedModel& model);

}  // namespace raylight::cli
