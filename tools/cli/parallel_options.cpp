#include "parallel_options.h"

#include "core/error.h"
#include "dist/mpi_communicator.h"
#include "dist/runtime.h"

namespace raylight::cli {

const std::set<std::string> kParallelValued = {"ranks", "ulysses", "ring", "dp", "timeout"};
const std::set<std::string> kParallelFlags = {"cfg-parallel"};
const char* const kParallelHelp =
    "parallel options:\n"
    "  --ranks N             run N CPU ranks (started through mpirun; default 1)\n"
    "  --ulysses N           Ulysses sequence-parallel degree\n"
    "  --ring N              Ring attention degree (USP when combined with --ulysses)\n"
    "  --cfg-parallel        conditional and unconditional passes on two rank groups\n"
    "  --dp N                data parallel: N groups sample seeds seed..seed+N-1\n"
    "  --timeout S           seconds any collective may take before the job ends (300)\n";

ParallelLayout parse_parallel(const Options& opt) {
  const int world = Runtime::world_size();
  const int64_t ranks = opt.integer("ranks", world);
  if (ranks != world)
    fail("--ranks ", ranks, " but this job has ", world, " ranks (an outer mpirun decides)");
  if (opt.has("timeout")) set_collective_timeout(opt.number("timeout", 300));
  ParallelLayout l;
  l.cfg = opt.flag("cfg-parallel") ? 2 : 1;
  l.dp = static_cast<int>(opt.integer("dp", 1));
  l.ring = static_cast<int>(opt.integer("ring", 1));
  const int rest = l.cfg * l.dp * l.ring;
  l.ulysses = static_cast<int>(opt.integer("ulysses", rest > 0 && world % rest == 0 ? world / rest : 1));
  return l;
}

}  // namespace raylight::cli
