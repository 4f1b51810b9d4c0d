#include <cstring>

#include "core/error.h"
#include "dist/communicator.h"

namespace raylight {
namespace {

class SoloCommunicator final : public Communicator {
 public:
  explicit SoloCommunicator(std::string name) : name_(std::move(name)) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const std::string& name() const override { return name_; }
  void all_to_all(const void* send, void* recv, size_t bytes) override { copy(send, recv, bytes); }
  void all_gather(const void* send, void* recv, size_t bytes) override { copy(send, recv, bytes); }
  void broadcast(void*, size_t, int root) override {
    if (root != 0) fail("broadcast from rank ", root, " in a group of one");
  }
  std::unique_ptr<Pending> start_exchange(const void* send, void* recv, size_t bytes,
                                                  int to, int from) override {
    if (to != 0 || from != 0) fail("exchange with rank ", to, "/", from, " in a group of one");
    copy(send, recv, bytes);
    return std::make_unique<DonePending>();
  }
  std::unique_ptr<Pending> start_all_gather(const void* send, void* recv,
                                                    size_t bytes) override {
    copy(send, recv, bytes);
    return std::make_unique<DonePending>();
  }
  void barrier() override {}

 private:
  static void copy(const void* src, void* dst, size_t n) {
    if (src != dst && n) std::memmove(dst, src, n);
  }
  std::string name_;
};

}  // namespace

std::unique_ptr<Communicator> make_solo_communicator(const std::string& name) {
  return std::make_unique<SoloCommunicator>(name);
}

}  // namespace raylight
