#include "dist/nccl/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>

#include "backend/cuda/event_pending.h"
#include "core/error.h"
#include "dist/mpi_communicator.h"
#include "dist/runtime.h"

namespace raylight {
namespace {

void check_nccl(ncclResult_t r, const char* what, const std::string& group) {
  if (r != ncclSuccess && r != ncclInProgress)
    fail("NCCL ", what, " in group '", group, "' failed: ", ncclGetErrorString(r));
}
void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("CUDA ", what, " failed: ", cudaGetErrorString(e));
}

// Watches queued operations; ends the job when one outlives the collective timeout.
class Watchdog {
 public:
  Watchdog(std::string group, ncclComm_t comm) : group_(std::move(group)), comm_(comm) {
    thread_ = std::thread([this] { run(); });
  }
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    for (auto& w : queue_) cudaEventDestroy(w.done);
  }
  // Records an event on `stream` after the operation just queued there.
  void watch(cudaStream_t stream, const char* op) {
    cudaEvent_t done;
    check_cuda(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "event create");
    check_cuda(cudaEventRecord(done, stream), "event record");
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(collective_timeout()));
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back({done, deadline, op});
    cv_.notify_all();
  }

 private:
  struct Watched {
    cudaEvent_t done;
    std::chrono::steady_clock::time_point deadline;
    const char* op;
  };
  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      if (queue_.empty()) {
        cv_.wait(lock);
        continue;
      }
      Watched w = queue_.front();
      lock.unlock();
      cudaError_t state = cudaEventQuery(w.done);
      lock.lock();
      if (state == cudaSuccess) {
        cudaEventDestroy(w.done);
        queue_.pop_front();
      } else if (std::chrono::steady_clock::now() > w.deadline) {
        std::fprintf(stderr,
                     "raylight [rank %d]: error: NCCL %s in group '%s' did not finish within %g s: "
                     "a rank of the group did not take part. Ending the job.\n",
                     Runtime::world_rank(), w.op, group_.c_str(), collective_timeout());
        ncclCommAbort(comm_);
        Runtime::abort_job(4);
      } else {
        cv_.wait_for(lock, std::chrono::milliseconds(2));
      }
    }
  }
  std::string group_;
  ncclComm_t comm_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Watched> queue_;
  bool stop_ = false;
  std::thread thread_;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Communicator& bootstrap, cudaStream_t stream, std::string name, cudaStream_t side)
      : name_(std::move(name)), rank_(bootstrap.rank()), size_(bootstrap.size()), stream_(stream),
        side_(side), owns_side_(side == nullptr) {
    ncclUniqueId id;
    if (rank_ == 0) check_nccl(ncclGetUniqueId(&id), "id creation", name_);
    bootstrap.broadcast(&id, sizeof id, 0);
    check_nccl(ncclCommInitRank(&comm_, size_, id, rank_), "communicator creation", name_);
    if (owns_side_) check_cuda(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking), "stream create");
    check_cuda(cudaMalloc(&scratch_, 1 + size_), "barrier scratch");
    watchdog_ = std::make_unique<Watchdog>(name_, comm_);
  }
  ~NcclCommunicator() override {
    cudaStreamSynchronize(side_);
    cudaStreamSynchronize(stream_);
    watchdog_.reset();
    ncclCommDestroy(comm_);
    if (owns_side_) cudaStreamDestroy(side_);
    cudaFree(scratch_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }

  void all_to_all(const void* send, void* recv, size_t bytes) override {
    const char* s = static_cast<const char*>(send);
    char* d = static_cast<char*>(recv);
    check_nccl(ncclGroupStart(), "group start", name_);
    for (int p = 0; p < size_; ++p) {
      check_nccl(ncclSend(s + p * bytes, bytes, ncclUint8, p, comm_, stream_), "send", name_);
      check_nccl(ncclRecv(d + p * bytes, bytes, ncclUint8, p, comm_, stream_), "recv", name_);
    }
    check_nccl(ncclGroupEnd(), "all_to_all", name_);
    watchdog_->watch(stream_, "all_to_all");
  }
  void all_gather(const void* send, void* recv, size_t bytes) override {
    check_nccl(ncclAllGather(send, recv, bytes, ncclUint8, comm_, stream_), "all_gather", name_);
    watchdog_->watch(stream_, "all_gather");
  }
  void broadcast(void* buf, size_t bytes, int root) override {
    check_nccl(ncclBroadcast(buf, buf, bytes, ncclUint8, root, comm_, stream_), "broadcast", name_);
    watchdog_->watch(stream_, "broadcast");
  }
  std::unique_ptr<Pending> start_exchange(const void* send, void* recv, size_t bytes,
                                                  int to, int from) override {
    join_side();
    check_nccl(ncclGroupStart(), "group start", name_);
    check_nccl(ncclSend(send, bytes, ncclUint8, to, comm_, side_), "send", name_);
    check_nccl(ncclRecv(recv, bytes, ncclUint8, from, comm_, side_), "recv", name_);
    check_nccl(ncclGroupEnd(), "ring exchange", name_);
    return finish_side("ring exchange");
  }
  std::unique_ptr<Pending> start_all_gather(const void* send, void* recv,
                                                    size_t bytes) override {
    join_side();
    check_nccl(ncclAllGather(send, recv, bytes, ncclUint8, comm_, side_), "all_gather", name_);
    return finish_side("all_gather (prefetch)");
  }
  std::unique_ptr<Pending> start_all_gathers(const std::vector<GatherPart>& parts) override {
    join_side();
    check_nccl(ncclGroupStart(), "group start", name_);
    for (const GatherPart& p : parts)
      check_nccl(ncclAllGather(p.send, p.recv, p.bytes, ncclUint8, comm_, side_), "all_gather", name_);
    check_nccl(ncclGroupEnd(), "all_gather group", name_);
    return finish_side("all_gather group (prefetch)");
  }
  void barrier() override {
    all_gather(scratch_, static_cast<char*>(scratch_) + 1, 1);
    check_cuda(cudaStreamSynchronize(stream_), "barrier");
  }

 private:
  // The side stream starts after everything queued so far on the compute stream.
  void join_side() {
    cudaEvent_t ready;
    check_cuda(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "event create");
    cudaEventRecord(ready, stream_);
    cudaStreamWaitEvent(side_, ready, 0);
    cudaEventDestroy(ready);
  }
  std::unique_ptr<Pending> finish_side(const char* op) {
    watchdog_->watch(side_, op);
    cudaEvent_t done;
    check_cuda(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "event create");
    cudaEventRecord(done, side_);
    return std::make_unique<cuda::EventPending>(done, stream_);
  }

  std::string name_;
  int rank_, size_;
  cudaStream_t stream_, side_;
  bool owns_side_;
  ncclComm_t comm_ = nullptr;
  std::unique_ptr<Watchdog> watchdog_;
  void* scratch_ = nullptr;  // 1 + size bytes for barrier()
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, void* stream,
                                                     const std::string& name, void* side_stream) {
  return std::make_unique<NcclCommunicator>(bootstrap, static_cast<cudaStream_t>(stream), name,
                                            static_cast<cudaStream_t>(side_stream));
}

std::string apply_pcie_safe_nccl_settings() {
  std::string applied;
  for (const char* var : {"NCCL_P2P_DISABLE", "NCCL_SHM_DISABLE"}) {
    if (std::getenv(var)) continue;
    setenv(var, "1", 0);
    applied += std::string(applied.empty() ? "" : " ") + var + "=1";
  }
  return applied.empty() ? "NCCL settings left as the environment sets them" : "applied " + applied;
}

}  // namespace raylight
