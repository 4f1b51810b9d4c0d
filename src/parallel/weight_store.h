// The weight seam. Model code asks for weights by checkpoint name and brackets each
// transformer block with begin_block/end_block; it never knows where weights live.
// A store knows where the stored bytes are (memory, a memory-mapped checkpoint, shards on
// other ranks, pinned host memory) and hands them to the bound backend, which turns them
// into compute-ready weights (fp32 on the CPU; bf16 or fp8 with a scale on a GPU).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/tensor.h"

namespace raylight {

// Which transformer block a weight belongs to (-1: outside the blocks). The family knows
// (DenoiserSpec::block_of); stores that move one block at a time (FSDP, offload) ask it.
using BlockOf = std::function<int(const std::string& weight)>;
// "<prefix><i>.<rest>" -> i + first; any other name -> -1 (also when <i> is not a number).
int numbered_block(const std::string& weight, const std::string& prefix, int first = 0);

class WeightStore {
 public:
  virtual ~WeightStore() = default;
  virtual bool has(const std::string& name) const = 0;
  virtual Shape shape(const std::string& name) const = 0;
  virtual DType stored_dtype(const std::string& name) const = 0;
  virtual std::vector<std::string> names() const = 0;
  virtual std::map<std::string, std::string> metadata() const { return {}; }

  // The backend weights are made for; must be set before get().
  void bind(Backend& backend) { backend_ = &backend; }
  // The weight in compute form. Backends that keep weights get each one made once.
  virtual Tensor get(const std::string& name);
  // Drops a weight get() kept (a LoRA now makes it elsewhere: no second copy stays).
  void forget(const std::string& name) { kept_.erase(name); }
  // Block lifecycle: where gathering, prefetching and releasing happen.
  virtual void begin_block(int /*index*/) {}
  virtual void end_block(int /*index*/) {}
  // Weight bytes this store holds now and at most so far (shards, gather buffers, host
  // copies); stores that only view a memory map hold none.
  virtual size_t held_bytes() const { return 0; }
  virtual size_t peak_held_bytes() const { return 0; }
  // A LoRA side term of a weight: y += (x down^T) up^T, factors in compute form (strength
  // and scale folded into up); undefined when the weight has none (parallel/lora/).
  struct LowRank {
    Tensor down, up;
    bool defined() const { return down.raw() != nullptr; }
  };
  virtual LowRank low_rank(const std::string& /*weight*/) { return {}; }
  // Print held bytes after every block (the CLI's --verbose).
  void set_verbose(bool on) { verbose_ = on; }

  struct Stored {
    Tensor bytes;       // host tensor as stored (any dtype)
    float scale = 1.0f; // per-tensor dequantisation scale
  };
  // The stored bytes of one tensor (other stores read them to shard or copy).
  virtual Stored stored(const std::string& name) const = 0;
  // stored(name).scale without reading the bytes (layouts are planned before any is read).
  virtual float stored_scale(const std::string& name) const { return stored(name).scale; }
  // Bytes [offset, offset + size) of stored(name).bytes into `dst`. A store whose tensors are
  // made of several file tensors (a renaming view that fuses rows) reads only the pieces the
  // range covers, so an FSDP rank never makes a whole tensor to keep its shard of it.
  virtual void read_stored(const std::string& name, size_t offset, size_t size, void* dst) const;
  // Says the caller keeps its own copy of what it needed of `name`'s stored bytes: a store
  // reading a memory map drops those pages from the process (they can be read again).
  virtual void release_stored(const std::string& /*name*/) const {}

 protected:
  Backend& backend() const;
  // One line per block when verbose: this rank's weight memory after the block.
  void report_block(int index) const;

 private:
  bool verbose_ = false;
  Backend* backend_ = nullptr;
  std::map<std::string, Tensor> kept_;
};

// Weights held in memory by name: the embedded tiny model and tests.
class MemoryWeights final : public WeightStore {
 public:
  MemoryWeights() = default;
  void put(const std::string& name, Tensor t) { tensors_[name] = std::move(t); }
  void set_metadata(std::map<std::string, std::string> m) { metadata_ = std::move(m); }
  bool has(const std::string& name) const override { return tensors_.count(name) != 0; }
  Shape shape(const std::string& name) const override { return at(name).shape(); }
  DType stored_dtype(const std::string& name) const override { return at(name).dtype(); }
  std::vector<std::string> names() const override;
  std::map<std::string, std::string> metadata() const override { return metadata_; }
  const std::map<std::string, Tensor>& tensors() const { return tensors_; }
  Stored stored(const std::string& name) const override { return {at(name), 1.0f}; }

 private:
  const Tensor& at(const std::string& name) const;
  std::map<std::string, Tensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace raylight
