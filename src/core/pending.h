// Work that was started without waiting for it: a collective (Ring K/V passing, an FSDP
// prefetch gather) or a host-to-device weight upload. wait() makes later work see its
// result: on a GPU it orders the compute stream after it (no host wait); on the CPU it
// completes it. Destroying a Pending waits for it.
#pragma once

namespace raylight {

class Pending {
 public:
  virtual ~Pending() = default;
  virtual void wait() = 0;
};

// Work that was finished when it was started (the CPU backend's copies, one-rank groups).
class DonePending final : public Pending {
 public:
  void wait() override {}
};

}  // namespace raylight
