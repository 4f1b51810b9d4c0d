// Weights read from a memory-mapped checkpoint. Nothing is copied at load: each weight is
// made from the stored bytes (bf16, fp16, fp8, scaled fp8) straight from the mapping when
// first used, so the full model never exists as a host copy. Every read of the mapping is
// followed by a check that the file was not cut short meanwhile (io/mapping_faults.h), so a
// truncated checkpoint is an Error naming it, never zeros computed with.
#pragma once

#include "io/checkpoint.h"
#include "parallel/weight_store.h"

namespace raylight {

class CheckpointWeights final : public WeightStore {
 public:
  explicit CheckpointWeights(Checkpoint checkpoint) : ckpt_(std::move(checkpoint)) {}
  bool has(const std::string& name) const override { return ckpt_.has(name); }
  Shape shape(const std::string& name) const override { return ckpt_.info(name).shape; }
  DType stored_dtype(const std::string& name) const override { return ckpt_.info(name).dtype; }
  std::vector<std::string> names() const override { return ckpt_.names(); }
  std::map<std::string, std::string> metadata() const override { return ckpt_.file().metadata(); }
  const Checkpoint& checkpoint() const { return ckpt_; }
  Tensor get(const std::string& name) override {
    Tensor w = WeightStore::get(name);  // reads the mapping (on the CPU: on every use)
    ckpt_.file().check_intact();
    return w;
  }
  Stored stored(const std::string& name) const override {
    ckpt_.file().check_intact();
    return {ckpt_.stored(name), ckpt_.weight_scale(name).value_or(1.0f)};
  }
  // Callers release what they copied, so the copy is checked here.
  void release_stored(const std::string& name) const override {
    ckpt_.file().check_intact();
    const Tensor bytes = ckpt_.stored(name);
    ckpt_.file().release_pages(bytes.raw(), bytes.nbytes());
  }

 private:
  Checkpoint ckpt_;
};

}  // namespace raylight
