#include "dist/mpi_communicator.h"

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <thread>

#include "core/error.h"

namespace raylight {
namespace {

double g_timeout_seconds = 300.0;

// MPI counts are ints: large buffers travel as several messages of at most 1 GiB.
constexpr size_t kMaxMessage = size_t{1} << 30;

class MpiCommunicator;

// Requests of one operation and which peer each one belongs to.
struct Requests {
  std::vector<MPI_Request> reqs;
  std::vector<int> peer;     // group rank the request talks to
  std::vector<bool> is_recv;

  void send(const void* buf, size_t bytes, int to, int tag, MPI_Comm comm) {
    const char* p = static_cast<const char*>(buf);
    for (size_t off = 0; off < bytes || (bytes == 0 && off == 0); off += kMaxMessage) {
      int n = static_cast<int>(std::min(kMaxMessage, bytes - off));
      reqs.emplace_back();
      MPI_Isend(p + off, n, MPI_BYTE, to, tag, comm, &reqs.back());
      peer.push_back(to);
      is_recv.push_back(false);
      if (bytes == 0) break;
    }
  }
  void recv(void* buf, size_t bytes, int from, int tag, MPI_Comm comm) {
    char* p = static_cast<char*>(buf);
    for (size_t off = 0; off < bytes || (bytes == 0 && off == 0); off += kMaxMessage) {
      int n = static_cast<int>(std::min(kMaxMessage, bytes - off));
      reqs.emplace_back();
      MPI_Irecv(p + off, n, MPI_BYTE, from, tag, comm, &reqs.back());
      peer.push_back(from);
      is_recv.push_back(true);
      if (bytes == 0) break;
    }
  }
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, std::string name) : comm_(comm), name_(std::move(name)) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Group group, world;
    MPI_Comm_group(comm_, &group);
    MPI_Comm_group(MPI_COMM_WORLD, &world);
    std::vector<int> mine(size_);
    for (int i = 0; i < size_; ++i) mine[i] = i;
    world_ranks_.resize(size_);
    MPI_Group_translate_ranks(group, size_, mine.data(), world, world_ranks_.data());
    MPI_Group_free(&group);
    MPI_Group_free(&world);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && comm_ != MPI_COMM_WORLD) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }

  void all_to_all(const void* send, void* recv, size_t bytes) override {
    Requests r;
    const char* s = static_cast<const char*>(send);
    char* d = static_cast<char*>(recv);
    for (int p = 0; p < size_; ++p) {
      if (p == rank_) continue;
      r.recv(d + p * bytes, bytes, p, kTagAllToAll, comm_);
      r.send(s + p * bytes, bytes, p, kTagAllToAll, comm_);
    }
    std::memmove(d + rank_ * bytes, s + rank_ * bytes, bytes);
    complete(r, "all_to_all");
  }

  void all_gather(const void* send, void* recv, size_t bytes) override {
    Requests r = post_all_gather(send, recv, bytes, kTagAllGather);
    complete(r, "all_gather");
  }
  std::unique_ptr<Pending> start_all_gather(const void* send, void* recv,
                                                    size_t bytes) override;

  void broadcast(void* buf, size_t bytes, int root) override {
    Requests r;
    if (rank_ == root) {
      for (int p = 0; p < size_; ++p)
        if (p != root) r.send(buf, bytes, p, kTagBroadcast, comm_);
    } else {
      r.recv(buf, bytes, root, kTagBroadcast, comm_);
    }
    complete(r, "broadcast");
  }

  std::unique_ptr<Pending> start_exchange(const void* send, void* recv, size_t bytes,
                                                  int to, int from) override;

  void barrier() override {
    char token = 0;
    std::vector<char> all(size_);
    all_gather(&token, all.data(), 1);
  }

  // Polls until every request completes or the deadline passes; then ends the job.
  void complete(Requests& r, const char* op) const {
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration<double>(g_timeout_seconds);
    for (;;) {
      int done = 0;
      MPI_Testall(static_cast<int>(r.reqs.size()), r.reqs.data(), &done, MPI_STATUSES_IGNORE);
      if (done) return;
      if (std::chrono::steady_clock::now() > deadline) timed_out(r, op);
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

 private:
  [[noreturn]] void timed_out(Requests& r, const char* op) const {
    std::ostringstream missing;
    bool first = true;
    for (size_t i = 0; i < r.reqs.size(); ++i) {
      if (r.reqs[i] == MPI_REQUEST_NULL || !r.is_recv[i]) continue;
      missing << (first ? "" : ", ") << world_ranks_[r.peer[i]];
      first = false;
    }
    std::ostringstream members;
    for (int i = 0; i < size_; ++i) members << (i ? "," : "") << world_ranks_[i];
    int me = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    std::fprintf(stderr,
                 "raylight [rank %d]: error: %s in group '%s' (ranks %s) timed out after %g s; "
                 "no data from rank(s) %s. Ending the job.\n",
                 me, op, name_.c_str(), members.str().c_str(), g_timeout_seconds,
                 first ? "(sends pending)" : missing.str().c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 4);
    std::abort();
  }

  Requests post_all_gather(const void* send, void* recv, size_t bytes, int tag) {
    Requests r;
    char* d = static_cast<char*>(recv);
    for (int p = 0; p < size_; ++p) {
      if (p == rank_) continue;
      r.recv(d + p * bytes, bytes, p, tag, comm_);
      r.send(send, bytes, p, tag, comm_);
    }
    std::memmove(d + rank_ * bytes, send, bytes);
    return r;
  }

  static constexpr int kTagAllToAll = 11, kTagAllGather = 12, kTagBroadcast = 13,
                       kTagExchange = 14, kTagAsyncGather = 15;
  MPI_Comm comm_;
  std::string name_;
  int rank_ = 0, size_ = 1;
  std::vector<int> world_ranks_;
};

class MpiExchange final : public Pending {
 public:
  MpiExchange(const MpiCommunicator& comm, Requests r, const char* op)
      : comm_(comm), r_(std::move(r)), op_(op) {}
  ~MpiExchange() override {
    if (!waited_) wait();
  }
  void wait() override {
    waited_ = true;
    comm_.complete(r_, op_);
  }

 private:
  const MpiCommunicator& comm_;
  Requests r_;
  const char* op_;
  bool waited_ = false;
};

std::unique_ptr<Pending> MpiCommunicator::start_exchange(const void* send, void* recv,
                                                                 size_t bytes, int to, int from) {
  if (to < 0 || to >= size_ || from < 0 || from >= size_)
    fail("exchange with rank ", to, "/", from, " outside group '", name_, "' of ", size_);
  Requests r;
  r.recv(recv, bytes, from, kTagExchange, comm_);
  r.send(send, bytes, to, kTagExchange, comm_);
  return std::make_unique<MpiExchange>(*this, std::move(r), "ring exchange");
}

std::unique_ptr<Pending> MpiCommunicator::start_all_gather(const void* send, void* recv,
                                                                   size_t bytes) {
  return std::make_unique<MpiExchange>(*this, post_all_gather(send, recv, bytes, kTagAsyncGather),
                                       "all_gather (prefetch)");
}

}  // namespace

void set_collective_timeout(double seconds) {
  if (!(seconds > 0)) fail("collective timeout must be positive, got ", seconds);
  g_timeout_seconds = seconds;
}
double collective_timeout() { return g_timeout_seconds; }

std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm, const std::string& name) {
  return std::make_unique<MpiCommunicator>(comm, name);
}

}  // namespace raylight
