#include "parallel/offload_weights.h"

#include <algorithm>

#include "core/error.h"

namespace raylight {

OffloadWeights::OffloadWeights(std::unique_ptr<WeightStore> source) : source_(std::move(source)) {
  for (const auto& name : source_->names()) {
    if (name.rfind("blocks.", 0) != 0) continue;
    const int block = std::stoi(name.substr(7, name.find('.', 7) - 7));
    block_names_[block].push_back(name);
    num_blocks_ = std::max(num_blocks_, block + 1);
  }
}

void OffloadWeights::load_block(int index) {
  if (loaded_.count(index) || !block_names_.count(index)) return;
  auto& weights = loaded_[index];
  for (const auto& name : block_names_.at(index)) {
    Stored s = source_->stored(name);
    Tensor w = backend().weight(s.bytes, s.scale);
    held_ += w.nbytes();
    weights.emplace(name, std::move(w));
  }
  peak_ = std::max(peak_, held_);
}

void OffloadWeights::drop_block(int index) {
  auto it = loaded_.find(index);
  if (it == loaded_.end()) return;
  for (const auto& [name, w] : it->second) held_ -= w.nbytes();
  loaded_.erase(it);
}

void OffloadWeights::begin_block(int index) {
  load_block(index);
  // The next block is made now, so it is ready when this one ends.
  load_block((index + 1) % std::max(num_blocks_, 1));
}

void OffloadWeights::end_block(int index) {
  drop_block(index);
  report_block(index);
}

Tensor OffloadWeights::get(const std::string& name) {
  for (const auto& [block, weights] : loaded_) {
    auto it = weights.find(name);
    if (it != weights.end()) return it->second;
  }
  if (name.rfind("blocks.", 0) == 0) fail("weight ", name, " used outside its block");
  Stored s = source_->stored(name);
  return backend().weight(s.bytes, s.scale);
}

}  // namespace raylight
