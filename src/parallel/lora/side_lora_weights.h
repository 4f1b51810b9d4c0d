// Low-rank LoRA factors of fp8 weights, beside whatever store places the weights (resident,
// FSDP shards, offload), which this store wraps and forwards to. low_rank(name) hands the
// model the factors of one weight in compute form; lora_linear.h adds their product.
//
// Where the factors live: every rank holds them whole on the host (a rank-64 pair of a
// 5120x5120 Wan 14B product is 2.6 MB in fp32, ~1 GB for every product of the model, next
// to the 14 GB of fp8 weights; sharding them would add a gather per block of tensors too
// small to keep the interconnect busy). Resident weights keep their factors on the device
// once made; with FSDP or offload the device holds one block's factors at a time: they are
// made at begin_block and dropped at end_block, streamed with their block like its weights.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "parallel/lora/lora_delta.h"
#include "parallel/weight_store.h"

namespace raylight {

class LoraSideWeights final : public WeightStore {
 public:
  // `inner` must already be bound to `backend`. `per_block`: drop a block's factors from
  // the device at end_block (FSDP, offload).
  LoraSideWeights(std::unique_ptr<WeightStore> inner, std::map<std::string, SideFactors> side,
                  const BlockOf& block_of, Backend& backend, bool per_block);
  bool has(const std::string& name) const override { return inner_->has(name); }
  Shape shape(const std::string& name) const override { return inner_->shape(name); }
  DType stored_dtype(const std::string& name) const override { return inner_->stored_dtype(name); }
  std::vector<std::string> names() const override { return inner_->names(); }
  std::map<std::string, std::string> metadata() const override { return inner_->metadata(); }
  Stored stored(const std::string& name) const override { return inner_->stored(name); }
  void release_stored(const std::string& name) const override { inner_->release_stored(name); }
  Tensor get(const std::string& name) override { return inner_->get(name); }
  void begin_block(int index) override;
  void end_block(int index) override;
  size_t held_bytes() const override { return inner_->held_bytes() + factor_bytes_; }
  size_t peak_held_bytes() const override { return inner_->peak_held_bytes() + peak_factor_bytes_; }
  LowRank low_rank(const std::string& name) override;

 private:
  LowRank make(const std::string& name) const;

  std::unique_ptr<WeightStore> inner_;
  std::map<std::string, SideFactors> side_;
  std::map<std::string, int> block_;   // weight -> its block
  bool per_block_;
  std::map<std::string, LowRank> kept_;  // compute-form factors on the device now
  size_t factor_bytes_ = 0, peak_factor_bytes_ = 0;
};

}  // namespace raylight
