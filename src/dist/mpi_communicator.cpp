// MPI communicator: point-to-point requests polled against a deadline (see the header).
//
// When a wait times out, the rank it waits for may itself be waiting for another one: in a
// ring, the ranks after a stopped rank all starve, and the first to time out would blame its
// innocent neighbour. So every poll loop also answers "whom are you waiting for?" probes
// (tag kTagProbe on the world communicator), and a rank that times out follows that chain
// until it reaches a rank that does not answer: that one is named as the cause.
#include "dist/mpi_communicator.h"

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <deque>
#include <set>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "dist/runtime.h"

namespace raylight {
namespace {

double g_timeout_seconds = 300.0;

// MPI counts are ints: large buffers travel as several messages of at most 1 GiB.
constexpr size_t kMaxMessage = size_t{1} << 30;

class MpiCommunicator;

// Tags on MPI_COMM_WORLD for the blame probes (collectives use their own communicators).
constexpr int kTagProbe = 31001, kTagProbeReply = 31002;

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

// What this rank is waiting for right now (set while complete() polls).
struct WaitState {
  const Requests* requests = nullptr;
  const std::vector<int>* world_ranks = nullptr;  // group rank -> world rank
};
WaitState g_wait;

// The world rank this rank waits to hear from (a pending receive first, else a pending
// send), or -1 when it waits for nobody.
int waiting_for() {
  const Requests* r = g_wait.requests;
  if (!r) return -1;
  for (int want_recv : {1, 0})
    for (size_t i = 0; i < r->reqs.size(); ++i)
      if (r->reqs[i] != MPI_REQUEST_NULL && r->is_recv[i] == bool(want_recv))
        return (*g_wait.world_ranks)[r->peer[i]];
  return -1;
}

// Answers every probe that has arrived with waiting_for().
void answer_probes() {
  static std::deque<int> replies;  // send buffers must outlive the freed requests
  for (;;) {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, kTagProbe, MPI_COMM_WORLD, &flag, &st);
    if (!flag) return;
    int asker = 0;
    MPI_Recv(&asker, 1, MPI_INT, st.MPI_SOURCE, kTagProbe, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    replies.push_back(waiting_for());
    MPI_Request req;
    MPI_Isend(&replies.back(), 1, MPI_INT, st.MPI_SOURCE, kTagProbeReply, MPI_COMM_WORLD, &req);
    MPI_Request_free(&req);
  }
}

// Asks world rank `rank` whom it waits for; false when it does not answer within `grace`.
bool ask_whom(int rank, double grace, int* reply) {
  static std::deque<int> tokens;
  int me = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  tokens.push_back(me);
  MPI_Request send, recv;
  MPI_Isend(&tokens.back(), 1, MPI_INT, rank, kTagProbe, MPI_COMM_WORLD, &send);
  MPI_Request_free(&send);
  MPI_Irecv(reply, 1, MPI_INT, rank, kTagProbeReply, MPI_COMM_WORLD, &recv);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(grace);
  for (;;) {
    int done = 0;
    MPI_Test(&recv, &done, MPI_STATUS_IGNORE);
    if (done) return true;
    if (std::chrono::steady_clock::now() > deadline) {
      MPI_Cancel(&recv);
      MPI_Request_free(&recv);
      return false;
    }
    answer_probes();  // others may be following a chain through this rank
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// Follows "waits for" from world rank `first` to the rank that does not answer, and says so.
std::string find_cause(int first) {
  int me = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  const double grace = std::min(10.0, std::max(1.0, collective_timeout() / 2));
  std::ostringstream why;
  std::set<int> seen{me};
  int cur = first;
  for (int hop = 0; hop < world; ++hop) {
    int next = -1;
    if (!ask_whom(cur, grace, &next)) {
      why << "rank " << cur << " does not answer (stopped, hung, or busy for over " << grace << " s)";
      return why.str();
    }
    if (next < 0) {
      why << "rank " << cur << " answers but waits for nobody (it is behind the others)";
      return why.str();
    }
    why << "rank " << cur << " waits for rank " << next << "; ";
    if (seen.count(next)) {
      why << "these ranks all run and wait for each other: their data is slow rather than "
             "missing (an overloaded machine or a --timeout too short for this size), or they "
             "are in different collectives";
      return why.str();
    }
    seen.insert(cur);
    cur = next;
  }
  why << "no rank at the end of the chain";
  return why.str();
}

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
    const WaitState outer = g_wait;
    g_wait = {&r, &world_ranks_};
    std::vector<int> done_index(r.reqs.size());
    for (int polls = 0;; ++polls) {
      // Testsome sets each completed request to MPI_REQUEST_NULL, so what is still pending
      // says exactly which peers have not sent yet.
      int count = 0;
      MPI_Testsome(static_cast<int>(r.reqs.size()), r.reqs.data(), &count, done_index.data(),
                   MPI_STATUSES_IGNORE);
      if (count == MPI_UNDEFINED) break;  // no active request left
      if (polls % 64 == 63) answer_probes();
      if (std::chrono::steady_clock::now() > deadline) timed_out(r, op);
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    g_wait = outer;
  }

 private:
  [[noreturn]] void timed_out(Requests& r, const char* op) const {
    // Peers whose data has not arrived; if every receive is done, peers not yet receiving.
    std::ostringstream missing, unsent;
    bool any_missing = false, any_unsent = false;
    for (size_t i = 0; i < r.reqs.size(); ++i) {
      if (r.reqs[i] == MPI_REQUEST_NULL) continue;
      std::ostringstream& list = r.is_recv[i] ? missing : unsent;
      bool& any = r.is_recv[i] ? any_missing : any_unsent;
      list << (any ? ", " : "") << world_ranks_[r.peer[i]];
      any = true;
    }
    const std::string stuck = any_missing ? "no data from rank(s) " + missing.str()
                                          : "rank(s) " + unsent.str() + " did not take this rank's data";
    std::ostringstream members;
    for (int i = 0; i < size_; ++i) members << (i ? "," : "") << world_ranks_[i];
    int me = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    const int suspect = waiting_for();
    const std::string cause = suspect >= 0 ? "; " + find_cause(suspect) : std::string();
    std::fprintf(stderr,
                 "raylight [rank %d]: error: %s in group '%s' (ranks %s) timed out after %g s; "
                 "%s%s. Ending the job.\n",
                 me, op, name_.c_str(), members.str().c_str(), g_timeout_seconds, stuck.c_str(),
                 cause.c_str());
    std::fflush(stderr);
    Runtime::abort_job(kExitTimeout);
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
