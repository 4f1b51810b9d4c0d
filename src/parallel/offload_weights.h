// CPU offload: weights stay in host memory (the source's stored bytes: a memory map or
// host tensors) and only the running block's weights, plus the next block's, exist in
// compute form at once. On a GPU that bounds weight memory to two blocks; on the CPU
// backend it is the same arithmetic as resident weights, which is what the tests check.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "parallel/weight_store.h"

namespace raylight {

class OffloadWeights final : public WeightStore {
 public:
  explicit OffloadWeights(std::unique_ptr<WeightStore> source);
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

 private:
  void load_block(int index);
  void drop_block(int index);

  std::unique_ptr<WeightStore> source_;
  std::map<int, std::vector<std::string>> block_names_;
  std::map<int, std::map<std::string, Tensor>> loaded_;  // block -> its compute weights
  int num_blocks_ = 0;
  size_t held_ = 0, peak_ = 0;
};

}  // namespace raylight
