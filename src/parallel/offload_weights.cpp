#include "parallel/offload_weights.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace raylight {

OffloadWeights::OffloadWeights(std::unique_ptr<WeightStore> source, const BlockOf& block_of, Backend& backend)
    : source_(std::move(source)) {
  bind(backend);
  std::map<int, size_t> pack_size;
  for (const auto& name : source_->names()) {
    const int block = block_of(name);
    if (block < 0) continue;
    const DType dtype = source_->stored_dtype(name);
    const Shape shape = source_->shape(name);
    // 16-byte alignment keeps every tensor usable in place by vectorised kernels.
    size_t& at = pack_size[block];
    placed_.emplace(name, Placed{block, at, dtype, shape, source_->stored_scale(name)});
    at += (shape_nbytes(shape, dtype) + 15) / 16 * 16;
    num_blocks_ = std::max(num_blocks_, block + 1);
  }
  size_t largest = 0;
  for (const auto& [block, size] : pack_size) {
    Tensor pack = backend.host_bytes(size);
    packs_.emplace(block, pack);
    host_bytes_ += size;
    largest = std::max(largest, size);
  }
  for (const auto& [name, p] : placed_) {
    source_->read_stored(name, 0, shape_nbytes(p.shape, p.dtype), static_cast<uint8_t*>(packs_.at(p.block).raw()) + p.offset);
    source_->release_stored(name);
  }
  if (!packs_.empty()) {
    slots_.for_each([&](Slot& slot) { slot.storage = backend.device_bytes(largest); });
    held_ = peak_ = 2 * largest;
  }
}

OffloadWeights::~OffloadWeights() {
  slots_.for_each([](Slot& s) { s.pending.reset(); });
}

void OffloadWeights::stream_into(Slot& slot, int block) {
  slot.pending.reset();
  slot.block = block;
  slot.pending = backend().start_upload(packs_.at(block), slot.storage, 0);
}

void OffloadWeights::begin_block(int index) {
  if (!packs_.count(index)) fail("no weights for block ", index);
  slots_.begin(index, num_blocks_, [this](Slot& slot, int block) { stream_into(slot, block); });
}

void OffloadWeights::end_block(int index) {
  slots_.end(index);
  report_block(index);
}

Tensor OffloadWeights::get(const std::string& name) {
  auto it = placed_.find(name);
  if (it == placed_.end()) return WeightStore::get(name);  // outside the blocks: kept
  const Placed& p = it->second;
  Slot& slot = slots_.running(p.block, name);
  slot.wait();
  return backend().weight(slot.storage.bytes_view(p.offset, p.shape, p.dtype), p.scale);
}

}  // namespace raylight
