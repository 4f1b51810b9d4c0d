#include "parallel/sharded_weights.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace raylight {
ShardRange shard_range(size_t bytes, int ranks, int rank) {
  ShardRange r;
  r.chunk = (bytes + 16 * ranks - 1) / (16 * ranks) * 16;
  r.begin = std::min(bytes, static_cast<size_t>(rank) * r.chunk);
  r.size = std::min(bytes, r.begin + r.chunk) - r.begin;
  return r;
}

ShardedWeights::ShardedWeights(const WeightStore& source, const BlockOf& block_of, Communicator& group,
                               Backend& backend, bool shards_on_host)
    : group_(group), shards_on_host_(shards_on_host), metadata_(source.metadata()) {
  bind(backend);
  const int n = group.size(), me = group.rank();
  // First the layout of every pack, then one pack at a time is read and placed.
  for (const auto& name : source.names()) {
    // Planned from shapes alone: a tensor the source makes of several pieces is not made here.
    const DType dtype = source.stored_dtype(name);
    const Shape shape = source.shape(name);
    Entry e{dtype, shape, source.stored_scale(name), shape_nbytes(shape, dtype), 0, block_of(name), 0};
    e.chunk = shard_range(e.bytes, n, me).chunk;
    Pack& pack = e.block >= 0 ? blocks_[e.block] : singles_[name];
    e.offset = pack.size;
    pack.names.push_back(name);
    pack.size += e.chunk;
    num_blocks_ = std::max(num_blocks_, e.block + 1);
    entries_.emplace(name, e);
  }
  for (auto& [index, pack] : blocks_) {
    read_shards(source, pack);
    largest_pack_ = std::max(largest_pack_, pack.size);
  }
  for (auto& [name, pack] : singles_) read_shards(source, pack);
  if (!shards_on_host_) account(static_cast<long long>(shard_bytes_));
}

void ShardedWeights::read_shards(const WeightStore& source, Pack& pack) {
  const int n = group_.size(), me = group_.rank();
  // Only this rank's bytes of the source are read; padding is zero.
  std::vector<uint8_t> mine(pack.size, 0);
  for (const auto& name : pack.names) {
    const Entry& e = entries_.at(name);
    const ShardRange r = shard_range(e.bytes, n, me);
    source.read_stored(name, r.begin, r.size, mine.data() + e.offset);
    source.release_stored(name);
  }
  if (shards_on_host_) {
    pack.mine = backend().host_bytes(pack.size);
    std::memcpy(pack.mine.raw(), mine.data(), pack.size);
  } else {
    pack.mine = backend().device_bytes(pack.size);
    backend().write_bytes(mine.data(), pack.mine, 0, pack.size);
  }
  shard_bytes_ += pack.size;
}

ShardedWeights::~ShardedWeights() {
  slots_.for_each([](Slot& s) { s.pending.clear(); });  // each waits: the peers posted the same gathers
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

// Starts rebuilding `pack`'s full tensors and returns the buffer that will hold them.
// `storage` and `staged` are allocated for packs of up to `capacity` bytes when undefined; operations go to `pending`.
Tensor ShardedWeights::gather(const Pack& pack, size_t capacity, Tensor& storage, Tensor& staged,
                              std::vector<std::unique_ptr<Pending>>& pending) {
  const size_t n = group_.size();
  if (n == 1 && !shards_on_host_) return pack.mine;  // the shards are the tensors
  if (!storage.defined()) {
    storage = backend().device_bytes(n * capacity);
    account(static_cast<long long>(storage.nbytes()));
  }
  if (n == 1) {  // host shards: the upload is the gather
    pending.push_back(backend().start_upload(pack.mine, storage, 0));
    return storage;
  }
  const uint8_t* source = static_cast<const uint8_t*>(pack.mine.raw());
  if (shards_on_host_) {
    if (!staged.defined()) {
      staged = backend().device_bytes(capacity);
      account(static_cast<long long>(staged.nbytes()));
    }
    // Queued on the transfer stream, where the gathers below queue after it.
    pending.push_back(backend().start_upload(pack.mine, staged, 0));
    source = static_cast<const uint8_t*>(staged.raw());
  }
  uint8_t* full = static_cast<uint8_t*>(storage.raw());
  std::vector<Communicator::GatherPart> parts;
  for (const auto& name : pack.names) {
    const Entry& e = entries_.at(name);
    if (e.chunk) parts.push_back({source + e.offset, full + n * e.offset, e.chunk});
  }
  pending.push_back(group_.start_all_gathers(parts));  // one launch for the whole block
  return storage;
}

void ShardedWeights::gather_into(Slot& slot, int block) {
  slot.wait();
  slot.block = block;
  slot.full = gather(blocks_.at(block), largest_pack_, slot.storage, slot.staged, slot.pending);
}

Tensor ShardedWeights::cut(const Tensor& full, const std::string& name) const {
  const Entry& e = entries_.at(name);
  const size_t at = e.block >= 0 ? group_.size() * e.offset : 0;
  return full.bytes_view(at, e.shape, e.dtype);
}

void ShardedWeights::begin_block(int index) {
  if (!blocks_.count(index)) fail("no weights for block ", index);
  slots_.begin(index, num_blocks_, [this](Slot& slot, int block) { gather_into(slot, block); });
}

void ShardedWeights::end_block(int index) {
  slots_.end(index);
  report_block(index);
}

Tensor ShardedWeights::get(const std::string& name) {
  const Entry& e = entry(name);
  if (e.block >= 0) {
    Slot& slot = slots_.running(e.block, name);
    slot.wait();
    return backend().weight(cut(slot.full, name), e.scale);
  }
  // Outside the blocks: gather this one tensor for this use only.
  Tensor storage, staged;
  std::vector<std::unique_ptr<Pending>> pending;
  const Pack& pack = singles_.at(name);
  Tensor full = gather(pack, pack.size, storage, staged, pending);
  for (auto& p : pending) p->wait();
  Tensor w = backend().weight(cut(full, name), e.scale);
  account(-static_cast<long long>(storage.defined() ? storage.nbytes() : 0) -
          static_cast<long long>(staged.defined() ? staged.nbytes() : 0));
  return w;
}

}  // namespace raylight
