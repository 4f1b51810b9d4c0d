// The process's place in a job. A process started by mpirun (ours or an outer one, which
// is how several machines work) joins the MPI world; any other process is a world of one
// and never touches MPI, so single-rank runs need no MPI launcher.
#pragma once

#include <memory>

#include "dist/communicator.h"
#include "dist/mesh.h"

namespace raylight {

class Runtime {
 public:
  static void init(int* argc, char*** argv);
  static void finalize();
  static bool distributed();
  static int world_rank();
  static int world_size();
  // Ends every rank of the job (or this process when alone) with `code`.
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
