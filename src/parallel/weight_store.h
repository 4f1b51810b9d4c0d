// The weight seam. Model code asks for weights by checkpoint name and brackets each
// transformer block with begin_block/end_block; it never knows where weights live.
// Stores decide: resident in memory, converted from a memory-mapped checkpoint on use,
// gathered from shards (FSDP) or streamed from host memory (offload).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace raylight {

class WeightStore {
 public:
  virtual ~WeightStore() = default;
  virtual bool has(const std::string& name) const = 0;
  virtual Shape shape(const std::string& name) const = 0;
  virtual DType stored_dtype(const std::string& name) const = 0;
  virtual std::vector<std::string> names() const = 0;
  virtual std::map<std::string, std::string> metadata() const { return {}; }
  // The weight in compute form for the backend (fp32 on the CPU).
  virtual Tensor get(const std::string& name) = 0;
  // Block lifecycle: where gathering, prefetching and releasing happen.
  virtual void begin_block(int /*index*/) {}
  virtual void end_block(int /*index*/) {}
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
  Tensor get(const std::string& name) override { return at(name).to_f32(); }
  const std::map<std::string, Tensor>& tensors() const { return tensors_; }

 private:
  const Tensor& at(const std::string& name) const;
  std::map<std::string, Tensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace raylight
