// The base weights with LoRAs merged into their stored bytes, below any placement: FSDP
// shards, offload packs and resident copies are all made from what stored() returns here,
// so every rank holds its share of the merged weight and offload streams it with its block.
//   bf16 / fp16 / fp32 weights: W' = W + sum(strength * delta), stored again in W's dtype.
//   fp8 weights: left as they are (their fp8 codes are never dequantised and requantised);
//     low-rank adapters run as side products at run time (side_factors(), LoraSideWeights).
//     With merge_fp8 (--lora-merge), or for adapters with no low-rank form (LoHa, LoKr,
//     diff, set_weight), the weight becomes a merged bf16 copy.
// The base store is shared, never changed: a server that drops its LoRAs builds its stores
// from the base again and gets the very bytes it had before.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "parallel/lora/lora_delta.h"
#include "parallel/lora/lora_plan.h"
#include "parallel/weight_store.h"

namespace raylight {

class MergedLoraWeights final : public WeightStore {
 public:
  MergedLoraWeights(std::shared_ptr<WeightStore> base, const LoraPlan& plan, bool merge_fp8);
  bool has(const std::string& name) const override { return base_->has(name); }
  Shape shape(const std::string& name) const override { return base_->shape(name); }
  DType stored_dtype(const std::string& name) const override;
  std::vector<std::string> names() const override { return base_->names(); }
  std::map<std::string, std::string> metadata() const override { return base_->metadata(); }
  Stored stored(const std::string& name) const override;
  void release_stored(const std::string& name) const override;
  // Unmerged weights are read from the base piece by piece (merged ones are made whole).
  float stored_scale(const std::string& name) const override;
  void read_stored(const std::string& name, size_t offset, size_t size, void* dst) const override;
  // Weights no LoRA merges into are the base's own (kept there once); merged ones are made
  // and kept here, so dropping this store drops them.
  Tensor get(const std::string& name) override;

  // fp8 weights patched by side products: weight -> its stacked factors.
  const std::map<std::string, SideFactors>& side() const { return side_; }
  // Weights merged here (for messages and tests).
  size_t merged_count() const { return merged_.size(); }

 private:
  std::shared_ptr<WeightStore> base_;
  std::map<std::string, std::vector<WeightPatch>> merged_;  // weight -> patches merged in
  std::map<std::string, SideFactors> side_;
  mutable std::mutex mutex_;
  mutable std::map<std::string, Tensor> made_;  // merged bytes until the reader releases them
};

}  // namespace raylight
