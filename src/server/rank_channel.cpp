// Command delivery (see rank_channel.h). The header carries a magic number so a rank that
// somehow fell out of step with rank 0 fails loudly instead of reading tensor bytes as a
// command.
#include "server/rank_channel.h"

#include <mpi.h>

#include <chrono>
#include <thread>
#include <vector>

#include "core/error.h"
#include "dist/mpi_communicator.h"
#include "dist/runtime.h"

namespace raylight::server {
namespace {

constexpr uint32_t kMagic = 0x52594c53;  // "RYLS"
constexpr int kHeaderTag = 71;
constexpr int kCancelTag = 72;

struct Header {
  uint32_t magic;
  uint32_t kind;
  uint64_t json_bytes;
  uint64_t blob_bytes;
};

}  // namespace

struct RankChannel::Waiter {
  MPI_Comm comm = MPI_COMM_NULL;
  int32_t notice = 1;                      // what a cancel notice carries (its arrival is what counts)
  std::vector<MPI_Request> notice_sends;   // rank 0's, completed when the job settles
  ~Waiter() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
  }
};

RankChannel::RankChannel() {
  if (!Runtime::distributed()) {
    comm_ = make_solo_communicator("control");
    return;
  }
  MPI_Comm dup;
  if (MPI_Comm_dup(MPI_COMM_WORLD, &dup) != MPI_SUCCESS) fail("could not create the server's control communicator");
  comm_ = make_mpi_communicator(dup, "control");
  waiter_ = std::make_unique<Waiter>();
  if (MPI_Comm_dup(MPI_COMM_WORLD, &waiter_->comm) != MPI_SUCCESS)
    fail("could not create the server's command communicator");
}

RankChannel::~RankChannel() = default;

void RankChannel::send(const Command& cmd) {
  if (!waiter_) return;
  Header h{kMagic, static_cast<uint32_t>(cmd.kind), cmd.json.size(), cmd.blob.size()};
  const int size = comm_->size();
  std::vector<MPI_Request> reqs(size - 1);
  for (int p = 1; p < size; ++p)
    MPI_Isend(&h, sizeof h, MPI_BYTE, p, kHeaderTag, waiter_->comm, &reqs[p - 1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(collective_timeout());
  for (;;) {
    int done = 0;
    MPI_Testall(static_cast<int>(reqs.size()), reqs.data(), &done, MPI_STATUSES_IGNORE);
    if (done) break;
    if (std::chrono::steady_clock::now() > deadline)
      fail("server ranks did not take a command within ", collective_timeout(), " s");
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  if (h.json_bytes + h.blob_bytes == 0) return;
  std::string payload = cmd.json + cmd.blob;
  comm_->broadcast(payload.data(), payload.size(), 0);
}

Command RankChannel::receive() {
  Header h{};
  MPI_Request req;
  MPI_Irecv(&h, sizeof h, MPI_BYTE, 0, kHeaderTag, waiter_->comm, &req);
  for (;;) {
    int done = 0;
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (h.magic != kMagic) fail("server ranks fell out of step (bad command header from rank 0)");
  Command cmd;
  cmd.kind = static_cast<CommandKind>(h.kind);
  if (h.json_bytes + h.blob_bytes == 0) return cmd;
  std::string payload(h.json_bytes + h.blob_bytes, '\0');
  comm_->broadcast(payload.data(), payload.size(), 0);
  cmd.json = payload.substr(0, h.json_bytes);
  cmd.blob = payload.substr(h.json_bytes);
  return cmd;
}

void RankChannel::post_cancel_notice() {
  if (notice_posted_) return;
  notice_posted_ = true;
  if (!waiter_) return;
  waiter_->notice_sends.resize(comm_->size() - 1);
  for (int p = 1; p < comm_->size(); ++p)
    MPI_Isend(&waiter_->notice, 1, MPI_INT32_T, p, kCancelTag, waiter_->comm, &waiter_->notice_sends[p - 1]);
}

bool RankChannel::cancel_noticed() {
  if (comm_->rank() == 0) return notice_posted_;
  if (notice_received_ || !waiter_) return notice_received_;
  int arrived = 0;
  MPI_Iprobe(0, kCancelTag, waiter_->comm, &arrived, MPI_STATUS_IGNORE);
  if (arrived) {
    int32_t v = 0;
    MPI_Recv(&v, 1, MPI_INT32_T, 0, kCancelTag, waiter_->comm, MPI_STATUS_IGNORE);
    notice_received_ = true;
  }
  return notice_received_;
}

bool RankChannel::settle_cancel_notices() {
  int32_t posted = notice_posted_ ? 1 : 0;
  comm_->broadcast(&posted, sizeof posted, 0);
  if (waiter_ && posted) {
    if (comm_->rank() == 0) {
      MPI_Waitall(static_cast<int>(waiter_->notice_sends.size()), waiter_->notice_sends.data(), MPI_STATUSES_IGNORE);
      waiter_->notice_sends.clear();
    } else if (!notice_received_) {
      int32_t v = 0;  // posted, so it is on its way: take it now, not in the next job
      MPI_Recv(&v, 1, MPI_INT32_T, 0, kCancelTag, waiter_->comm, MPI_STATUS_IGNORE);
    }
  }
  notice_posted_ = notice_received_ = false;
  return posted != 0;
}

std::unique_ptr<Communicator> RankChannel::split(int color, const std::string& name) {
  if (!waiter_) return make_solo_communicator(name);
  MPI_Comm group;
  if (MPI_Comm_split(MPI_COMM_WORLD, color, comm_->rank(), &group) != MPI_SUCCESS)
    fail("could not create the server's ", name, " communicator");
  return make_mpi_communicator(group, name);
}

}  // namespace raylight::server
