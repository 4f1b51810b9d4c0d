// FSDP-style weight sharding. Every rank keeps 1/N of each tensor's stored bytes, read
// straight from the source (a memory-mapped checkpoint: pages of other ranks' shards are
// never touched), at the stored dtype: fp8 stays one byte per value. Before a transformer
// block runs its tensors are all-gathered into one of two reused buffers, and the next
// block's gather is started so communication overlaps the current block; the buffer is
// released when the block ends. Tensors outside the blocks (embeddings, head) are
// gathered on use into a transient buffer.
//
// Shard arithmetic: a tensor of B bytes is padded to N*c bytes with c = ceil(B/N); rank r
// owns bytes [r*c, (r+1)*c) (zero beyond B), so an all-gather of the shards rebuilds the
// tensor contiguously with no re-layout.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "parallel/weight_store.h"

namespace raylight {

struct ShardRange {
  size_t chunk;  // bytes per rank (c)
  size_t begin;  // first byte of this rank's shard within the tensor
  size_t size;   // real bytes in this rank's shard (may be < chunk, or 0)
};
ShardRange shard_range(size_t tensor_bytes, int ranks, int rank);

class ShardedWeights final : public WeightStore {
 public:
  // Reads this rank's shards from `source`, which is released afterwards.
  ShardedWeights(const WeightStore& source, Communicator& group);
  ~ShardedWeights() override;

  bool has(const std::string& name) const override { return entries_.count(name) != 0; }
  Shape shape(const std::string& name) const override { return entry(name).shape; }
  DType stored_dtype(const std::string& name) const override { return entry(name).dtype; }
  std::vector<std::string> names() const override;
  std::map<std::string, std::string> metadata() const override { return metadata_; }

  Tensor get(const std::string& name) override;
  void begin_block(int index) override;
  void end_block(int index) override;
  size_t held_bytes() const override { return held_; }
  size_t peak_held_bytes() const override { return peak_; }
  Stored stored(const std::string& name) const override;
  size_t shard_bytes() const { return shard_bytes_; }

 private:
  struct Entry {
    DType dtype;
    Shape shape;
    float scale;
    size_t bytes;   // B
    size_t chunk;   // c
    int block;      // transformer block, or -1
    size_t offset;  // within this rank's packed shards and within the block's gather buffer
  };
  struct Pack {                 // one block's tensors (or one tensor outside the blocks)
    std::vector<std::string> names;
    std::vector<uint8_t> mine;  // this rank's shards, concatenated
  };
  struct Slot {                 // a gather buffer: a block's full tensors, each N*c bytes
    int block = -1;
    bool in_use = false;
    std::vector<uint8_t> bytes;
    std::vector<std::unique_ptr<PendingExchange>> pending;
  };
  const Entry& entry(const std::string& name) const;
  void gather_into(Slot& slot, int block);
  void wait(Slot& slot);
  Slot* slot_for(int block);
  Tensor view(const std::vector<uint8_t>& buffer, const std::string& name) const;
  void account(long long delta);

  Communicator& group_;
  std::map<std::string, Entry> entries_;
  std::map<int, Pack> blocks_;                 // block index -> its tensors
  std::map<std::string, Pack> singles_;        // tensors outside the blocks
  std::map<std::string, std::string> metadata_;
  Slot slots_[2];
  int num_blocks_ = 0;
  size_t shard_bytes_ = 0, held_ = 0, peak_ = 0;
};

}  // namespace raylight
