#include "parallel/weight_store.h"

#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "dist/runtime.h"

namespace raylight {

int numbered_block(const std::string& weight, const std::string& prefix, int first) {
  if (weight.compare(0, prefix.size(), prefix) != 0) return -1;
  const size_t end = weight.find('.', prefix.size());
  if (end == std::string::npos || end == prefix.size() || end - prefix.size() > 6) return -1;
  int n = 0;
  for (size_t i = prefix.size(); i < end; ++i) {
    if (weight[i] < '0' || weight[i] > '9') return -1;
    n = n * 10 + (weight[i] - '0');
  }
  return first + n;
}

Backend& WeightStore::backend() const {
  if (!backend_) fail("weights were used before a backend was bound to them");
  return *backend_;
}

void WeightStore::report_block(int index) const {
  if (!verbose_) return;
  std::fprintf(stderr, "[rank %d] block %d: weight memory %.3f MiB (peak %.3f MiB)\n",
               Runtime::world_rank(), index, held_bytes() / 1048576.0, peak_held_bytes() / 1048576.0);
}

Tensor WeightStore::get(const std::string& name) {
  auto it = kept_.find(name);
  if (it != kept_.end()) return it->second;
  Stored s = stored(name);
  Tensor w = backend().weight(s.bytes, s.scale);
  if (backend().keeps_weights()) {
    kept_.emplace(name, w);
    release_stored(name);  // the device copy is the one used from now on
  }
  return w;
}

void WeightStore::read_stored(const std::string& name, size_t offset, size_t size, void* dst) const {
  const Stored s = stored(name);
  if (!s.bytes.is_contiguous()) fail("weight ", name, " is not stored contiguously");
  if (offset > s.bytes.nbytes() || size > s.bytes.nbytes() - offset)
    fail("weight ", name, ": bytes [", offset, ", ", offset + size, ") are outside its ", s.bytes.nbytes(), " bytes");
  std::memcpy(dst, static_cast<const uint8_t*>(s.bytes.raw()) + offset, size);
}

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
