#include "parallel/offload_weights.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace raylight {

OffloadWeights::OffloadWeights(std::unique_ptr<WeightStore> source, Backend& backend)
    : source_(std::move(source)) {
  bind(backend);
  std::map<int, size_t> pack_size;
  for (const auto& name : source_->names()) {
    if (name.rfind("blocks.", 0) != 0) continue;
    const int block = std::stoi(name.substr(7, name.find('.', 7) - 7));
    Stored s = source_->stored(name);
    if (!s.bytes.is_contiguous()) fail("weight ", name, " is not stored contiguously");
    // 16-byte alignment keeps every tensor usable in place by vectorised kernels.
    size_t& at = pack_size[block];
    placed_.emplace(name, Placed{block, at, s.bytes.dtype(), s.bytes.shape(), s.scale});
    at += (s.bytes.nbytes() + 15) / 16 * 16;
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
    Stored s = source_->stored(name);
    std::memcpy(static_cast<uint8_t*>(packs_.at(p.block).raw()) + p.offset, s.bytes.raw(), s.bytes.nbytes());
    source_->release_stored(name);
  }
  if (!packs_.empty()) {
    for (auto& slot : slots_) slot.storage = backend.device_bytes(largest);
    held_ = peak_ = 2 * largest;
  }
}

OffloadWeights::~OffloadWeights() {
  for (auto& s : slots_) s.pending.reset();
}

OffloadWeights::Slot* OffloadWeights::slot_for(int block) {
  for (auto& s : slots_)
    if (s.block == block) return &s;
  return nullptr;
}

void OffloadWeights::stream_into(Slot& slot, int block) {
  slot.pending.reset();
  slot.block = block;
  slot.pending = backend().start_upload(packs_.at(block), slot.storage, 0);
}

void OffloadWeights::begin_block(int index) {
  if (!packs_.count(index)) fail("no weights for block ", index);
  Slot* slot = slot_for(index);
  if (!slot) {
    slot = !slots_[0].in_use ? &slots_[0] : &slots_[1];
    if (slot->in_use) fail("block ", index, " began while two other blocks are still running");
    stream_into(*slot, index);
  }
  if (slot->pending) slot->pending->wait();
  slot->in_use = true;
  // The next block streams in while this one computes (the first after the last).
  const int next = (index + 1) % num_blocks_;
  if (next != index && !slot_for(next)) {
    Slot& other = slot == &slots_[0] ? slots_[1] : slots_[0];
    if (!other.in_use) stream_into(other, next);
  }
}

void OffloadWeights::end_block(int index) {
  Slot* slot = slot_for(index);
  if (!slot || !slot->in_use) fail("block ", index, " ended without beginning");
  slot->in_use = false;
  report_block(index);
}

Tensor OffloadWeights::get(const std::string& name) {
  auto it = placed_.find(name);
  if (it == placed_.end()) return WeightStore::get(name);  // outside the blocks: kept
  const Placed& p = it->second;
  Slot* slot = slot_for(p.block);
  if (!slot || !slot->in_use) fail("weight ", name, " used outside its block");
  if (slot->pending) slot->pending->wait();
  return backend().weight(slot->storage.bytes_view(p.offset, p.shape, p.dtype), p.scale);
}

}  // namespace raylight
