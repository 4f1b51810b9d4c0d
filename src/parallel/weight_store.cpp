#include "parallel/weight_store.h"

#include "core/error.h"

namespace raylight {

std::vector<std::string> MemoryWeights::names() const {
  std::vector<std::string> out;
  for (const auto& [name, t] : tensors_) out.push_back(name);
  return out;
}

const Tensor& MemoryWeights::at(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("model weights have no tensor named ", name);
  return it->second;
}

}  // namespace raylight
