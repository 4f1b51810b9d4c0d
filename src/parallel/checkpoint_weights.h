// Resident weights read from a memory-mapped checkpoint. Nothing is copied at load: each
// get() dequantises the stored bytes (bf16, fp16, fp8, scaled fp8) straight from the
// mapping, so host memory holds only what the current op needs.
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
  Tensor get(const std::string& name) override { return ckpt_.weight_f32(name); }
  const Checkpoint& checkpoint() const { return ckpt_; }

 private:
  Checkpoint ckpt_;
};

}  // namespace raylight
