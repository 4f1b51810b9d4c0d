// Host-to-device copies that run beside compute: weight offload streams the next block's
// bytes from page-locked host memory while the current block computes, and FSDP with
// offload uploads shards before gathering them. Each copy starts after the work queued so
// far on the compute stream (so a buffer the running block still reads is not overwritten)
// and the compute stream waits for it only where its bytes are used.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <memory>

#include "core/pending.h"

namespace raylight::cuda {

class TransferQueue {
 public:
  explicit TransferQueue(cudaStream_t compute);
  ~TransferQueue();
  TransferQueue(const TransferQueue&) = delete;
  TransferQueue& operator=(const TransferQueue&) = delete;

  // Copies `bytes` from host `src` to device `dst`; see the file comment for the ordering.
  std::unique_ptr<Pending> start_upload(const void* src, void* dst, size_t bytes);
  cudaStream_t stream() const { return stream_; }

  // Page-locked host memory, or null when the system refuses to lock that much (the caller
  // falls back to plain memory: copies from it are correct, just not overlapped).
  static std::shared_ptr<void> allocate_pinned(size_t bytes);

 private:
  cudaStream_t compute_;
  cudaStream_t stream_ = nullptr;
};

}  // namespace raylight::cuda
