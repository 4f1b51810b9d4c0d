// A Pending for work queued on a side stream (an upload, an NCCL exchange or gather):
// wait() makes the compute stream wait for the event recorded after that work, so later
// kernels see its result without a host wait. Destroying it waits the same way.
#pragma once

#include <cuda_runtime.h>

#include "core/pending.h"

namespace raylight::cuda {

class EventPending final : public Pending {
 public:
  // Takes ownership of `done`.
  EventPending(cudaEvent_t done, cudaStream_t compute) : done_(done), compute_(compute) {}
  ~EventPending() override {
    if (done_) wait();
  }
  EventPending(const EventPending&) = delete;
  EventPending& operator=(const EventPending&) = delete;
  void wait() override {
    if (!done_) return;
    cudaStreamWaitEvent(compute_, done_, 0);
    cudaEventDestroy(done_);
    done_ = nullptr;
  }

 private:
  cudaEvent_t done_;
  cudaStream_t compute_;
};

}  // namespace raylight::cuda
