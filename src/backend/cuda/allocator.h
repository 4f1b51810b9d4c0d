// Caching device allocator. Freed blocks go to a free list keyed by their exact (rounded)
// size and are handed out again to the next request of that size: a transformer asks for
// the same few activation sizes in every block, so after the first block nothing is
// allocated from the driver. All work runs on one stream, so a block freed on the host
// can be reused at once (later kernels are ordered after earlier ones on the stream).
// Peak accounting counts bytes handed out (live tensors), and separately bytes reserved.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace raylight::cuda {

// Held by shared_ptr: every block's deleter keeps the allocator alive, so tensors may
// outlive the backend that made them (a weight store destroyed after its backend).
class DeviceAllocator : public std::enable_shared_from_this<DeviceAllocator> {
 public:
  DeviceAllocator() = default;
  ~DeviceAllocator();
  DeviceAllocator(const DeviceAllocator&) = delete;
  DeviceAllocator& operator=(const DeviceAllocator&) = delete;

  // A device block of at least `bytes`; freed (returned to the cache) with the last owner.
  std::shared_ptr<void> allocate(size_t bytes);
  // Returns every cached block to the driver (after an out-of-memory, or on request).
  void release_cached();

  size_t live_bytes() const { return live_; }
  size_t peak_live_bytes() const { return peak_live_; }
  size_t reserved_bytes() const { return reserved_; }
  size_t peak_reserved_bytes() const { return peak_reserved_; }
  void reset_peak() { peak_live_ = live_; peak_reserved_ = reserved_; }
  // Never hold more than `bytes` from the driver (0: no limit). A request that would pass it
  // first returns the cache, then fails with a message saying what would fit.
  void set_limit(size_t bytes) { limit_ = bytes; }

 private:
  void give_back(void* p, size_t bytes);
  std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;
  size_t live_ = 0, peak_live_ = 0, reserved_ = 0, peak_reserved_ = 0, limit_ = 0;
};

}  // namespace raylight::cuda
