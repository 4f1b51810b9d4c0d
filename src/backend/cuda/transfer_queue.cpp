#include "backend/cuda/transfer_queue.h"

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/event_pending.h"

namespace raylight::cuda {

TransferQueue::TransferQueue(cudaStream_t compute) : compute_(compute) {
  RL_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
}

TransferQueue::~TransferQueue() {
  cudaStreamSynchronize(stream_);
  cudaStreamDestroy(stream_);
}

std::unique_ptr<Pending> TransferQueue::start_upload(const void* src, void* dst, size_t bytes) {
  cudaEvent_t ready, done;
  RL_CUDA(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
  RL_CUDA(cudaEventRecord(ready, compute_));
  RL_CUDA(cudaStreamWaitEvent(stream_, ready, 0));
  cudaEventDestroy(ready);
  if (bytes) RL_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  RL_CUDA(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  RL_CUDA(cudaEventRecord(done, stream_));
  return std::make_unique<EventPending>(done, compute_);
}

std::shared_ptr<void> TransferQueue::allocate_pinned(size_t bytes) {
  void* p = nullptr;
  if (cudaMallocHost(&p, bytes ? bytes : 1) != cudaSuccess) {
    cudaGetLastError();  // clear the error: the caller falls back to plain memory
    return nullptr;
  }
  return std::shared_ptr<void>(p, [](void* q) { cudaFreeHost(q); });
}

}  // namespace raylight::cuda
