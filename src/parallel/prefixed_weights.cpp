#include "parallel/prefixed_weights.h"

namespace raylight {

PrefixedWeights::PrefixedWeights(std::unique_ptr<WeightStore> source, std::string prefix)
    : source_(std::move(source)), prefix_(std::move(prefix)) {}

std::vector<std::string> PrefixedWeights::names() const {
  std::vector<std::string> out;
  for (const auto& n : source_->names())
    if (n.size() > prefix_.size() && n.compare(0, prefix_.size(), prefix_) == 0) out.push_back(n.substr(prefix_.size()));
  return out;
}

}  // namespace raylight
