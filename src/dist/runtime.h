// The process's place in a job. A process started by mpirun (ours or an outer one, which
// is how several machines work) joins the MPI world; any other process is a world of one
// and never touches MPI, so single-rank runs need no MPI launcher.
#pragma once

#include <memory>

#include "dist/communicator.h"
#include "dist/mesh.h"

namespace raylight {

// Exit codes of every raylight command (the README lists them): 0 done; 2 an input, option
// or file was wrong (the message names it); 3 an internal error (a bug); 4 a collective or
// the shutdown of the ranks timed out (--timeout); 128+N the process was ended by signal N
// (mpirun may report such a rank's end as 1 or as its own code).
constexpr int kExitOk = 0, kExitError = 2, kExitInternal = 3, kExitTimeout = 4;

class Runtime {
 public:
  // MPI_Init for a process started by mpirun, bounded by the collective timeout (set it
  // first) like finalize: it needs mpirun as well.
  static void init(int* argc, char*** argv);
  // MPI_Finalize, bounded by the collective timeout: it needs mpirun, and a stopped mpirun
  // would otherwise hold every rank in it forever. When it does not return in time the
  // process says so and exits with kExitTimeout (`code` when that is already an error).
  static void finalize(int code = kExitOk);
  static bool distributed();
  static int world_rank();
  static int world_size();
  // Ends every rank of the job (or this process when alone) with `code`. MPI_Abort needs
  // mpirun too: if it has not ended this process after a few seconds, the process exits.
  [[noreturn]] static void abort_job(int code);
};

// True when this process was started by mpirun (the environment says so).
bool started_by_mpirun();

// This rank's groups for a layout; every rank of the job must call it (it is collective).
// Groups talk over host memory; sequence-parallel groups for a GPU backend are made from
// the same layout by the backend's own communicator factory.
struct RankGroups {
  ParallelLayout layout;
  MeshCoords coords;
  std::unique_ptr<Communicator> ulysses, ring, cfg, dp;
  std::unique_ptr<Communicator> world;  // every rank: FSDP shards over it, peaks are gathered on it
};
RankGroups make_rank_groups(const ParallelLayout& layout);

}  // namespace raylight
