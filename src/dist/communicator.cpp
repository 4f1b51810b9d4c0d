#include "dist/communicator.h"

namespace raylight {
namespace {

// Waits for every part in turn.
class PendingGroup final : public Pending {
 public:
  explicit PendingGroup(std::vector<std::unique_ptr<Pending>> parts) : parts_(std::move(parts)) {}
  void wait() override {
    for (auto& p : parts_) p->wait();
    parts_.clear();
  }

 private:
  std::vector<std::unique_ptr<Pending>> parts_;
};

}  // namespace

std::unique_ptr<Pending> Communicator::start_all_gathers(const std::vector<GatherPart>& parts) {
  std::vector<std::unique_ptr<Pending>> started;
  for (const GatherPart& p : parts) started.push_back(start_all_gather(p.send, p.recv, p.bytes));
  return std::make_unique<PendingGroup>(std::move(started));
}

}  // namespace raylight
