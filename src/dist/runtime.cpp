// The process's place in a job (see runtime.h), and the time bounds on MPI calls that need
// mpirun itself (finalize, abort).
#include "dist/runtime.h"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "dist/mpi_communicator.h"

namespace raylight {
namespace {

bool g_mpi = false;
int g_rank = 0, g_size = 1;

// Exits the process with `code` unless cancelled within `seconds`: the bound on MPI calls
// that wait for mpirun (init, finalize, abort). Its thread never touches MPI.
class Watchdog {
 public:
  Watchdog(double seconds, int code, const char* what)
      : thread_([this, seconds, code, what] {
          std::unique_lock<std::mutex> lock(mutex_);
          if (cv_.wait_for(lock, std::chrono::duration<double>(seconds), [this] { return cancelled_; }))
            return;
          std::fprintf(stderr, "raylight [rank %d]: error: %s did not finish within %g s (is mpirun "
                       "stopped or gone?); exiting\n", g_rank, what, seconds);
          std::fflush(stderr);
          ::_exit(code);
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      cancelled_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool cancelled_ = false;
  std::thread thread_;
};

}  // namespace

bool started_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") ||
         std::getenv("PMIX_RANK");
}

void Runtime::init(int* argc, char*** argv) {
  if (g_mpi || !started_by_mpirun()) return;
  int provided = 0;
  {
    Watchdog bound(collective_timeout(), kExitTimeout, "MPI start-up");
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  }
  // Errors come back as codes we turn into messages, never as MPI's own abort.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  g_mpi = true;
}

void Runtime::finalize(int code) {
  if (!g_mpi) return;
  std::fflush(stdout);
  std::fflush(stderr);
  Watchdog bound(collective_timeout(), code == kExitOk ? kExitTimeout : code, "MPI shutdown");
  MPI_Finalize();
  g_mpi = false;
}

bool Runtime::distributed() { return g_mpi && g_size > 1; }
int Runtime::world_rank() { return g_rank; }
int Runtime::world_size() { return g_size; }

void Runtime::abort_job(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  if (g_mpi && g_size > 1) {
    Watchdog bound(std::min(10.0, collective_timeout()), code, "MPI_Abort");
    MPI_Abort(MPI_COMM_WORLD, code);
  }
  std::exit(code);
}

RankGroups make_rank_groups(const ParallelLayout& layout) {
  RankGroups g;
  g.layout = layout;
  g.coords = mesh_coords(layout, g_rank);
  if (!g_mpi || g_size == 1) {
    g.ulysses = make_solo_communicator("ulysses");
    g.ring = make_solo_communicator("ring");
    g.cfg = make_solo_communicator("cfg");
    g.dp = make_solo_communicator("dp");
    g.world = make_solo_communicator("world");
    return g;
  }
  const MeshCoords& c = g.coords;
  // Ranks with equal colour form a group; the key orders them by their coordinate.
  auto split = [&](int colour, int key, const char* name) {
    MPI_Comm comm;
    if (MPI_Comm_split(MPI_COMM_WORLD, colour, key, &comm) != MPI_SUCCESS)
      fail("could not create the ", name, " communicator");
    return make_mpi_communicator(comm, name);
  };
  const int L = layout.ulysses, R = layout.ring, C = layout.cfg;
  g.ulysses = split(((c.dp * C + c.cfg) * R + c.ring), c.ulysses, "ulysses");
  g.ring = split(((c.dp * C + c.cfg) * L + c.ulysses), c.ring, "ring");
  g.cfg = split((c.dp * R + c.ring) * L + c.ulysses, c.cfg, "cfg");
  g.dp = split((c.cfg * R + c.ring) * L + c.ulysses, c.dp, "dp");
  g.world = split(0, g_rank, "world");
  return g;
}

}  // namespace raylight
