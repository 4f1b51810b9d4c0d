// A group of ranks that exchange bytes. Sequence-parallel attention, FSDP, CFG and data
// parallel are written against this interface; MPI implements it for host memory (the CPU
// backend, and CI), NCCL for device memory. Every operation is bounded by a timeout: a
// collective that cannot complete ends the job with a message naming the operation and the
// ranks that did not take part, instead of hanging.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "core/pending.h"

namespace raylight {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Group name for messages ("ulysses", "ring", "cfg", ...).
  virtual const std::string& name() const = 0;

  // send holds size() blocks of `bytes_per_rank`, block j for rank j; recv receives block
  // `rank()` of every rank, in rank order.
  virtual void all_to_all(const void* send, void* recv, size_t bytes_per_rank) = 0;
  // recv receives every rank's `bytes` in rank order.
  virtual void all_gather(const void* send, void* recv, size_t bytes) = 0;
  virtual void broadcast(void* buf, size_t bytes, int root) = 0;
  // Sends `send` to rank `to` and receives into `recv` from rank `from`, asynchronously, so
  // computation can overlap (Ring attention passes K/V blocks this way).
  virtual std::unique_ptr<Pending> start_exchange(const void* send, void* recv,
                                                          size_t bytes, int to, int from) = 0;
  // all_gather started without waiting (FSDP prefetches the next block's weights this way).
  virtual std::unique_ptr<Pending> start_all_gather(const void* send, void* recv,
                                                            size_t bytes) = 0;
  // Several all_gathers started together, completed by one wait (NCCL launches them as one
  // group). The default starts them one by one.
  struct GatherPart {
    const void* send;
    void* recv;
    size_t bytes;
  };
  virtual std::unique_ptr<Pending> start_all_gathers(const std::vector<GatherPart>& parts);
  virtual void barrier() = 0;
};

// A communicator of one rank: every operation is a local copy. Lets single-process runs
// use the same code path as parallel ones.
std::unique_ptr<Communicator> make_solo_communicator(const std::string& name);

}  // namespace raylight
