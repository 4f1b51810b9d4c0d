// The parallel flags every model-running command shares:
//   --ranks N (CPU ranks; starts them through mpirun), --ulysses N, --ring N,
//   --cfg-parallel, --dp N, --timeout SECONDS (per collective).
#pragma once

#include <set>
#include <string>

#include "dist/mesh.h"
#include "options.h"

namespace raylight::cli {

extern const std::set<std::string> kParallelValued;
extern const std::set<std::string> kParallelFlags;
extern const char* const kParallelHelp;

// Reads the layout and applies --timeout. Without --ulysses/--ring, a job of N ranks
// splits its sequence with Ulysses over what CFG and DP leave.
ParallelLayout parse_parallel(const Options& opt);

}  // namespace raylight::cli
