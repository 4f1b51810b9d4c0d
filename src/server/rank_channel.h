// How rank 0 hands work to the other ranks. Every rank runs `raylight serve`; rank 0
// serves HTTP and the others wait here for commands. A command is a small fixed header
// (kind and lengths), then its JSON parameters and tensor bytes.
//
// A waiting rank may wait for hours, so the header is not a collective (those end the job
// after the collective timeout, and poll hard): it is a point-to-point message the waiting
// rank polls for with a millisecond's sleep in between, without a deadline - an idle server
// costs no CPU, and if rank 0 dies mpirun ends every rank anyway. Once a header arrives, the
// payload and everything after it use ordinary bounded collectives on `comm()`, a
// communicator of every rank that nothing else uses (duplicates of the MPI world, so its
// messages never meet the model's).
//
// Only the main thread of each process may call MPI (the runtime asks for
// MPI_THREAD_FUNNELED), so rank 0's job worker runs on its main thread and the HTTP threads
// never touch this channel.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dist/communicator.h"

namespace raylight::server {

enum class CommandKind : uint32_t { Heartbeat = 1, Exit = 2, Load = 3, Unload = 4, Sample = 5, Generate = 6,
                                  Loras = 7, TextEncode = 8, VaeDecode = 9, VaeEncode = 10 };

struct Command {
  CommandKind kind = CommandKind::Heartbeat;
  std::string json;  // parameters
  std::string blob;  // tensors (a safetensors body) or empty
};

class RankChannel {
 public:
  // Collective: every rank constructs it (it duplicates the MPI world when there are
  // several ranks; a single rank needs no MPI).
  RankChannel();
  ~RankChannel();
  RankChannel(const RankChannel&) = delete;
  RankChannel& operator=(const RankChannel&) = delete;

  // Rank 0.
  void send(const Command& cmd);
  // Every other rank: waits (idly, without a deadline) until rank 0 sends.
  Command receive();
  // Every rank, for agreement and per-step exchanges.
  Communicator& comm() { return *comm_; }

  // Cancel notices, for cancellation between transformer blocks (block_cancel.h): rank 0
  // posts one to every rank, without waiting, when it first sees a job cancelled; the others
  // look for it between blocks without blocking. At the end of every sampling job all ranks
  // settle (collective): a posted notice is consumed everywhere, so none leaks into the next
  // job, and every rank learns whether rank 0 posted one.
  void post_cancel_notice();              // rank 0; once per job
  bool cancel_noticed();                  // any rank; true once the notice has arrived (rank 0: posted)
  bool settle_cancel_notices();           // every rank, collective; whether a notice was posted
  // Collective: a communicator of the ranks with the same `color` (host messages only).
  std::unique_ptr<Communicator> split(int color, const std::string& name);

 private:
  struct Waiter;
  std::unique_ptr<Communicator> comm_;
  std::unique_ptr<Waiter> waiter_;  // null with a single rank
  bool notice_posted_ = false, notice_received_ = false;
};

}  // namespace raylight::server
