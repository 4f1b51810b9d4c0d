// FSDP-style weight sharding. Every rank keeps 1/N of each tensor's stored bytes, read
// straight from the source (a memory-mapped checkpoint: pages of other ranks' shards are
// never touched), at the stored dtype: fp8 stays one byte per value. The shards live in
// the backend's memory (GPU memory; page-locked host memory when combined with offload).
// Before a transformer block runs its tensors are all-gathered into one of two reused
// buffers, and the next block's gather is started so communication overlaps the current
// block (on a GPU: NCCL on the transfer stream, joined by the compute stream only where the
// bytes are used). Tensors outside the blocks (embeddings, head) are gathered on use into
// a transient buffer.
//
// Shard arithmetic: a tensor of B bytes is padded to N*c bytes with c = ceil(B/N) rounded
// up to 16 bytes (so every gathered tensor starts 16-byte aligned for vectorised kernels);
// rank r owns bytes [r*c, (r+1)*c) (zero beyond B), so an all-gather of the shards
// rebuilds the tensor contiguously with no re-layout. With one rank the shards are the tensors and
// nothing is gathered.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "parallel/block_slots.h"
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
  // Reads this rank's shards from `source` (which may be released afterwards) into
  // `backend`'s memory, or into host memory when `shards_on_host` (offload). `group` must
  // move bytes of the backend's memory (NCCL on a GPU; on a GPU with shards on host its
  // started gathers must queue on the backend's transfer stream).
  ShardedWeights(const WeightStore& source, const BlockOf& block_of, Communicator& group,
                 Backend& backend, bool shards_on_host = false);
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
  // Bytes of this rank's shards (in backend or host memory).
  size_t shard_bytes() const { return shard_bytes_; }

 private:
  struct Entry {
    DType dtype;
    Shape shape;
    float scale;
    size_t bytes;   // B
    size_t chunk;   // c
    int block;      // transformer block, or -1
    size_t offset;  // within its pack of shards; N*offset within the gathered buffer
  };
  struct Pack {     // one block's tensors (or one tensor outside the blocks)
    std::vector<std::string> names;
    size_t size = 0;
    Tensor mine;    // this rank's shards, concatenated
  };
  struct Slot {     // a gather buffer: a block's full tensors, each N*c bytes
    int block = -1;
    bool in_use = false;
    Tensor storage;  // gathered bytes (unused with one rank and device shards)
    Tensor staged;   // device copy of host shards, the gather's source (offload)
    Tensor full;     // what weights are cut from: storage, or the pack itself
    std::vector<std::unique_ptr<Pending>> pending;
    void wait() {
      for (auto& p : pending) p->wait();
      pending.clear();
    }
  };
  const Entry& entry(const std::string& name) const;
  void read_shards(const WeightStore& source, Pack& pack);
  Tensor gather(const Pack& pack, size_t capacity, Tensor& storage, Tensor& staged, std::vector<std::unique_ptr<Pending>>& pending);
  void gather_into(Slot& slot, int block);
  Tensor cut(const Tensor& full, const std::string& name) const;
  void account(long long delta);

  Communicator& group_;
  bool shards_on_host_;
  std::map<std::string, Entry> entries_;
  std::map<int, Pack> blocks_;                 // block index -> its tensors
  std::map<std::string, Pack> singles_;        // tensors outside the blocks
  std::map<std::string, std::string> metadata_;
  BlockSlots<Slot> slots_;
  int num_blocks_ = 0;
  size_t largest_pack_ = 0;
  size_t shard_bytes_ = 0, held_ = 0, peak_ = 0;
};

}  // namespace raylight
