// A view of a store held elsewhere (shared): what a model's placement is built over when
// the base store must outlive it (a server that changes LoRAs builds its placement again
// from the same base, never from weights it already changed). get() is the base's, so a
// backend that keeps weights keeps the base's once, whichever view asked.
#pragma once

#include <memory>
#include <string>

#include "parallel/weight_store.h"

namespace raylight {

class SharedWeights final : public WeightStore {
 public:
  explicit SharedWeights(std::shared_ptr<WeightStore> base) : base_(std::move(base)) {}
  bool has(const std::string& name) const override { return base_->has(name); }
  Shape shape(const std::string& name) const override { return base_->shape(name); }
  DType stored_dtype(const std::string& name) const override { return base_->stored_dtype(name); }
  std::vector<std::string> names() const override { return base_->names(); }
  std::map<std::string, std::string> metadata() const override { return base_->metadata(); }
  Stored stored(const std::string& name) const override { return base_->stored(name); }
  void release_stored(const std::string& name) const override { base_->release_stored(name); }
  float stored_scale(const std::string& name) const override { return base_->stored_scale(name); }
  void read_stored(const std::string& name, size_t offset, size_t size, void* dst) const override {
    base_->read_stored(name, offset, size, dst);
  }
  Tensor get(const std::string& name) override { return base_->get(name); }

 private:
  std::shared_ptr<WeightStore> base_;
};

}  // namespace raylight
