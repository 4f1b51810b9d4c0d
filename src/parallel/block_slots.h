// Two buffers for consecutive transformer blocks, shared by the stores that bring a block's
// weights in before it runs (FSDP gathers, offload uploads): the running block's slot and
// the next block's, which is filled while the running block computes (the first block's
// after the last: forwards repeat).
#pragma once

#include <string>

#include "core/error.h"

namespace raylight {

// Slot: `int block` (-1: empty), `bool in_use`, and `void wait()` (its fill has landed).
template <typename Slot>
class BlockSlots {
 public:
  Slot* find(int block) {
    for (auto& s : slots_)
      if (s.block == block) return &s;
    return nullptr;
  }

  // The slot of block `index`, ready and marked in use; fill(slot, block) starts filling a
  // slot (and sets its block). Starts filling the other slot with the next block.
  template <typename Fill>
  Slot& begin(int index, int num_blocks, Fill fill) {
    Slot* slot = find(index);
    if (!slot) {
      slot = !slots_[0].in_use ? &slots_[0] : &slots_[1];
      if (slot->in_use) fail("block ", index, " began while two other blocks are still running");
      fill(*slot, index);
    }
    slot->wait();
    slot->in_use = true;
    const int next = (index + 1) % num_blocks;
    if (next != index && !find(next)) {
      Slot& other = slot == &slots_[0] ? slots_[1] : slots_[0];
      if (!other.in_use) fill(other, next);
    }
    return *slot;
  }

  void end(int index) {
    Slot* slot = find(index);
    if (!slot || !slot->in_use) fail("block ", index, " ended without beginning");
    slot->in_use = false;
  }

  // The slot of block `index` while it runs; fails naming `weight` otherwise.
  Slot& running(int index, const std::string& weight) {
    Slot* slot = find(index);
    if (!slot || !slot->in_use) fail("weight ", weight, " used outside begin_block(", index, ")/end_block");
    return *slot;
  }

  template <typename F>
  void for_each(F f) {
    for (auto& s : slots_) f(s);
  }

 private:
  Slot slots_[2];
};

}  // namespace raylight
