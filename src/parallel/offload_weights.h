// CPU offload: each transformer block's stored bytes are packed once into host memory the
// device copies from directly (page-locked on a GPU), and streamed into one of two device
// slots ahead of use: while block i computes, block i+1 is copied on the backend's
// transfer stream, and the compute stream waits for it only when block i+1 begins. Weight
// memory on the device is two blocks plus the tensors outside the blocks (embeddings and
// head, kept). On the CPU backend the slots are host memory and the copies are memcpy, the
// same arithmetic as resident weights, which is what the tests check.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "parallel/block_slots.h"
#include "parallel/weight_store.h"

namespace raylight {

class OffloadWeights final : public WeightStore {
 public:
  OffloadWeights(std::unique_ptr<WeightStore> source, const BlockOf& block_of, Backend& backend);
  ~OffloadWeights() override;
  bool has(const std::string& name) const override { return source_->has(name); }
  Shape shape(const std::string& name) const override { return source_->shape(name); }
  DType stored_dtype(const std::string& name) const override { return source_->stored_dtype(name); }
  std::vector<std::string> names() const override { return source_->names(); }
  std::map<std::string, std::string> metadata() const override { return source_->metadata(); }
  Stored stored(const std::string& name) const override { return source_->stored(name); }

  Tensor get(const std::string& name) override;
  void begin_block(int index) override;
  void end_block(int index) override;
  size_t held_bytes() const override { return held_; }
  size_t peak_held_bytes() const override { return peak_; }
  // Host bytes holding the blocks.
  size_t host_bytes() const { return host_bytes_; }

 private:
  struct Placed {  // where a block tensor sits in its block's pack
    int block;
    size_t offset;
    DType dtype;
    Shape shape;
    float scale;
  };
  struct Slot {
    int block = -1;
    bool in_use = false;
    Tensor storage;
    std::unique_ptr<Pending> pending;
    void wait() {
      if (pending) pending->wait();
    }
  };
  void stream_into(Slot& slot, int block);

  std::unique_ptr<WeightStore> source_;
  std::map<std::string, Placed> placed_;
  std::map<int, Tensor> packs_;  // block -> its stored bytes, host memory
  BlockSlots<Slot> slots_;
  int num_blocks_ = 0;
  size_t host_bytes_ = 0, held_ = 0, peak_ = 0;
};

}  // namespace raylight
