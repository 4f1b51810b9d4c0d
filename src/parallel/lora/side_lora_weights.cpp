#include "parallel/lora/side_lora_weights.h"

#include <algorithm>

namespace raylight {

LoraSideWeights::LoraSideWeights(std::unique_ptr<WeightStore> inner, std::map<std::string, SideFactors> side,
                                 const BlockOf& block_of, Backend& backend, bool per_block)
    : inner_(std::move(inner)), side_(std::move(side)), per_block_(per_block) {
  bind(backend);
  for (const auto& [name, f] : side_) block_[name] = block_of(name);
}

WeightStore::LowRank LoraSideWeights::make(const std::string& name) const {
  const SideFactors& f = side_.at(name);
  return {backend().weight(f.down, 1.0f), backend().weight(f.up, 1.0f)};
}

WeightStore::LowRank LoraSideWeights::low_rank(const std::string& name) {
  if (!side_.count(name)) return {};
  auto it = kept_.find(name);
  if (it != kept_.end()) return it->second;
  LowRank lr = make(name);
  if (backend().keeps_weights()) {
    kept_.emplace(name, lr);
    factor_bytes_ += lr.down.nbytes() + lr.up.nbytes();
    peak_factor_bytes_ = std::max(peak_factor_bytes_, factor_bytes_);
  }
  return lr;
}

void LoraSideWeights::begin_block(int index) {
  inner_->begin_block(index);
}

void LoraSideWeights::end_block(int index) {
  inner_->end_block(index);
  if (!per_block_) return;
  for (auto it = kept_.begin(); it != kept_.end();) {
    if (block_.at(it->first) == index) {
      factor_bytes_ -= it->second.down.nbytes() + it->second.up.nbytes();
      it = kept_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace raylight
