// Starts the job's ranks for a user who asked for several (`--ranks N` or `--gpus LIST`):
// the current command is re-executed under mpirun, which then owns every rank, so a rank
// that dies takes the job down and nothing is orphaned.
#pragma once

#include <string>
#include <vector>

namespace raylight {

// Replaces this process with `mpirun -np ranks <this program> args...`; returns only by
// throwing when mpirun cannot be started.
[[noreturn]] void exec_under_mpirun(int ranks, const std::vector<std::string>& argv);

}  // namespace raylight
