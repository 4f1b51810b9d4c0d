// A view of the tensors of another store that sit under a key prefix, named without it
// ("model.diffusion_model.blocks.0..." or "diffusion_model.blocks.0..." -> "blocks.0..."),
// so a family's code reads one naming whatever prefix a file put its tensors under.
#pragma once

#include <memory>
#include <string>

#include "parallel/weight_store.h"

namespace raylight {

class PrefixedWeights final : public WeightStore {
 public:
  PrefixedWeights(std::unique_ptr<WeightStore> source, std::string prefix);
  bool has(const std::string& name) const override { return source_->has(prefix_ + name); }
  Shape shape(const std::string& name) const override { return source_->shape(prefix_ + name); }
  DType stored_dtype(const std::string& name) const override { return source_->stored_dtype(prefix_ + name); }
  std::vector<std::string> names() const override;
  std::map<std::string, std::string> metadata() const override { return source_->metadata(); }
  Stored stored(const std::string& name) const override { return source_->stored(prefix_ + name); }
  void release_stored(const std::string& name) const override { source_->release_stored(prefix_ + name); }
  float stored_scale(const std::string& name) const override { return source_->stored_scale(prefix_ + name); }
  void read_stored(const std::string& name, size_t offset, size_t size, void* dst) const override {
    source_->read_stored(prefix_ + name, offset, size, dst);
  }

 private:
  std::unique_ptr<WeightStore> source_;
  std::string prefix_;
};

}  // namespace raylight
