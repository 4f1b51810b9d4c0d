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
  // `extra` joins the file's metadata (the numbers of a diffusers config.json beside it).
  explicit CheckpointWeights(Checkpoint checkpoint, std::map<std::string, std::string> extra = {})
      : ckpt_(std::move(checkpoint)), extra_(std::move(extra)) {}
  bool has(const std::string& name) const override { return ckpt_.has(name); }
  Shape shape(const std::string& name) const override { return ckpt_.info(name).shape; }
  DType stored_dtype(const std::string& name) const override { return ckpt_.info(name).dtype; }
  std::vector<std::string> names() const override { return ckpt_.names(); }
  std::map<std::string, std::string> metadata() const override {
    std::map<std::string, std::string> m = ckpt_.file().metadata();
    for (const auto& [k, v] : extra_) m[k] = v;
    return m;
  }
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
  // A range copied from the mapping is checked after the copy, as get() checks its reads.
  void read_stored(const std::string& name, size_t offset, size_t size, void* dst) const override {
    WeightStore::read_stored(name, offset, size, dst);
    ckpt_.file().check_intact();
  }
  // Callers release what they copied, so the copy is checked here.
  void release_stored(const std::string& name) const override {
    ckpt_.file().check_intact();
    const Tensor bytes = ckpt_.stored(name);
    ckpt_.file().release_pages(bytes.raw(), bytes.nbytes());
  }

 private:
  Checkpoint ckpt_;
  std::map<std::string, std::string> extra_;
};

}  // namespace raylight
