#include "parallel/sharded_weights.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace raylight {
namespace {

// "blocks.<i>.<rest>" -> i; anything else -> -1.
int block_of(const std::string& name) {
  if (name.rfind("blocks.", 0) != 0) return -1;
  size_t dot = name.find('.', 7);
  return std::stoi(name.substr(7, dot - 7));
}

}  // namespace

ShardRange shard_range(size_t bytes, int ranks, int rank) {
  ShardRange r;
  r.chunk = (bytes + ranks - 1) / ranks;
  r.begin = std::min(bytes, static_cast<size_t>(rank) * r.chunk);
  r.size = std::min(bytes, r.begin + r.chunk) - r.begin;
  return r;
}

ShardedWeights::ShardedWeights(const WeightStore& source, Communicator& group)
    : group_(group), metadata_(source.metadata()) {
  const int n = group.size(), me = group.rank();
  for (const auto& name : source.names()) {
    Stored s = source.stored(name);
    if (!s.bytes.is_contiguous()) fail("weight ", name, " is not stored contiguously");
    Entry e{s.bytes.dtype(), s.bytes.shape(), s.scale, s.bytes.nbytes(), 0, block_of(name), 0};
    const ShardRange r = shard_range(e.bytes, n, me);
    e.chunk = r.chunk;
    Pack& pack = e.block >= 0 ? blocks_[e.block] : singles_[name];
    e.offset = pack.mine.size();
    pack.names.push_back(name);
    pack.mine.resize(pack.mine.size() + r.chunk, 0);
    // Only this rank's bytes of the source are read.
    std::memcpy(pack.mine.data() + e.offset, static_cast<const uint8_t*>(s.bytes.raw()) + r.begin, r.size);
    shard_bytes_ += r.chunk;
    num_blocks_ = std::max(num_blocks_, e.block + 1);
    entries_.emplace(name, e);
  }
  account(static_cast<long long>(shard_bytes_));
}

ShardedWeights::~ShardedWeights() {
  for (auto& s : slots_) s.pending.clear();  // each waits: the peers posted the same gathers
}

std::vector<std::string> ShardedWeights::names() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : entries_) out.push_back(name);
  return out;
}

const ShardedWeights::Entry& ShardedWeights::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail("model weights have no tensor named ", name);
  return it->second;
}

WeightStore::Stored ShardedWeights::stored(const std::string& name) const {
  fail("weight ", name, " is sharded across ranks; no rank holds its stored bytes whole");
}

void ShardedWeights::account(long long delta) {
  held_ = static_cast<size_t>(static_cast<long long>(held_) + delta);
  peak_ = std::max(peak_, held_);
}

void ShardedWeights::wait(Slot& slot) {
  for (auto& p : slot.pending) p->wait();
  slot.pending.clear();
}

void ShardedWeights::gather_into(Slot& slot, int block) {
  wait(slot);
  const Pack& pack = blocks_.at(block);
  const size_t n = group_.size();
  const size_t need = n * pack.mine.size();
  if (need > slot.bytes.size()) {
    account(static_cast<long long>(need) - static_cast<long long>(slot.bytes.size()));
    slot.bytes.resize(need);
  }
  slot.block = block;
  for (const auto& name : pack.names) {
    const Entry& e = entries_.at(name);
    if (e.chunk == 0) continue;
    slot.pending.push_back(group_.start_all_gather(pack.mine.data() + e.offset,
                                                   slot.bytes.data() + n * e.offset, e.chunk));
  }
}

ShardedWeights::Slot* ShardedWeights::slot_for(int block) {
  for (auto& s : slots_)
    if (s.block == block) return &s;
  return nullptr;
}

Tensor ShardedWeights::view(const std::vector<uint8_t>& buffer, const std::string& name) const {
  const Entry& e = entries_.at(name);
  const size_t at = e.block >= 0 ? group_.size() * e.offset : 0;
  return Tensor::view(const_cast<uint8_t*>(buffer.data()) + at, e.shape, e.dtype, nullptr);
}

void ShardedWeights::begin_block(int index) {
  if (!blocks_.count(index)) fail("no weights for block ", index);
  Slot* slot = slot_for(index);
  if (!slot) {
    slot = !slots_[0].in_use ? &slots_[0] : &slots_[1];
    if (slot->in_use) fail("block ", index, " began while two other blocks are still running");
    gather_into(*slot, index);
  }
  wait(*slot);
  slot->in_use = true;
  // Start the next block's gather (the first block's after the last: forwards repeat).
  const int next = (index + 1) % num_blocks_;
  if (next != index && !slot_for(next)) {
    Slot& other = slot == &slots_[0] ? slots_[1] : slots_[0];
    if (!other.in_use) gather_into(other, next);
  }
}

void ShardedWeights::end_block(int index) {
  Slot* slot = slot_for(index);
  if (!slot || !slot->in_use) fail("block ", index, " ended without beginning");
  slot->in_use = false;
  report_block(index);
}

Tensor ShardedWeights::get(const std::string& name) {
  const Entry& e = entry(name);
  if (e.block >= 0) {
    Slot* slot = slot_for(e.block);
    if (!slot || !slot->in_use)
      fail("weight ", name, " used outside begin_block(", e.block, ")/end_block");
    wait(*slot);
    return backend().weight(view(slot->bytes, name), e.scale);
  }
  // Outside the blocks: gather this one tensor for this use only.
  const Pack& pack = singles_.at(name);
  std::vector<uint8_t> full(group_.size() * e.chunk);
  account(static_cast<long long>(full.size()));
  if (e.chunk) group_.all_gather(pack.mine.data(), full.data(), e.chunk);
  Tensor w = backend().weight(view(full, name), e.scale);
  account(-static_cast<long long>(full.size()));
  return w;
}

}  // namespace raylight
