#include "backend/cuda/allocator.h"

#include <algorithm>

#include "backend/cuda/cuda_check.h"

namespace raylight::cuda {
namespace {

// Sizes round up to 512 B below 1 MiB and to 2 MiB above it, so slightly different
// requests share blocks without wasting much.
size_t round_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  const size_t q = bytes < (1u << 20) ? 512 : (2u << 20);
  return (bytes + q - 1) / q * q;
}

}  // namespace

DeviceAllocator::~DeviceAllocator() { release_cached(); }

std::shared_ptr<void> DeviceAllocator::allocate(size_t bytes) {
  const size_t size = round_size(bytes);
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
    }
  }
  if (!p && limit_ && reserved_ + size > limit_) {
    release_cached();
    if (reserved_ + size > limit_)
      fail("GPU memory limit of ", limit_ / 1073741824.0, " GiB reached: ", live_ / 1073741824.0,
           " GiB in use and ", size / 1048576.0, " MiB more needed. Shard the weights over ranks "
           "(--fsdp with --gpus), stream them from host memory (--offload), or use a smaller video");
  }
  if (!p) {
    cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      release_cached();
      err = cudaMalloc(&p, size);
    }
    if (err != cudaSuccess)
      fail("CUDA allocation of ", size, " bytes failed: ", cudaGetErrorString(err), " (",
           live_, " bytes live, ", reserved_, " reserved)");
    std::lock_guard<std::mutex> lock(mu_);
    reserved_ += size;
    peak_reserved_ = std::max(peak_reserved_, reserved_);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    live_ += size;
    peak_live_ = std::max(peak_live_, live_);
  }
  auto self = shared_from_this();
  return std::shared_ptr<void>(p, [self, size](void* q) { self->give_back(q, size); });
}

void DeviceAllocator::give_back(void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  live_ -= bytes;
  free_[bytes].push_back(p);
}

void DeviceAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mu_);
  cudaDeviceSynchronize();  // cached blocks may still be read by queued kernels
  for (auto& [size, list] : free_) {
    for (void* p : list) cudaFree(p);
    reserved_ -= size * list.size();
  }
  free_.clear();
}

}  // namespace raylight::cuda
