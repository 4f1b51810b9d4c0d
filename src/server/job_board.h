// The jobs of the server: a FIFO queue for the one worker that runs them on the ranks,
// their states and per-step progress for status requests and event streams, cancellation,
// and the results of finished jobs until they age out. One mutex guards everything and
// one condition variable announces every change (each change bumps a version number), so
// a waiter - the worker, an event stream, a ?wait=1 request - needs no other machinery.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace raylight::server {

enum class JobKind { Load, Unload, Sample, Generate, Loras, TextEncode, VaeDecode, VaeEncode };
enum class JobState { Queued, Running, Succeeded, Failed, Cancelled };
const char* job_kind_name(JobKind k);
const char* job_state_name(JobState s);
inline bool job_final(JobState s) { return s != JobState::Queued && s != JobState::Running; }

struct JobResult {
  std::string body;           // what GET /v1/jobs/ID/result answers
  std::string content_type;   // of body
  nlohmann::json info = nlohmann::json::object();  // shown in the job's status
};

struct Job {
  std::string id;
  JobKind kind = JobKind::Sample;
  nlohmann::json params;   // the request's parameters, as the ranks receive them
  std::string payload;     // the request's tensors (safetensors bytes), if any
  std::atomic<bool> cancel{false};

  // Guarded by the board's mutex.
  JobState state = JobState::Queued;
  int step = 0, total = 0;
  int error_status = 0;    // HTTP status describing a failure (400s: the request; 500: ours)
  std::string error;
  JobResult result;
  double created = 0, started = 0, finished = 0;  // Unix seconds
  uint64_t version = 0;
};

// Why a submission was refused: the HTTP status and message to answer with.
struct Refused {
  int status;
  std::string message;
};

class JobBoard {
 public:
  explicit JobBoard(size_t max_queued = 32, size_t keep_finished = 32);

  // Queues a job and returns its id; throws Refused when the queue is full or closed.
  std::string submit(JobKind kind, nlohmann::json params, std::string payload = {});
  // The worker: waits up to `timeout` for a queued job and marks it running.
  std::shared_ptr<Job> next(std::chrono::milliseconds timeout);
  void progress(const Job& job, int step, int total);
  // Marks a running job finished. `state` is Succeeded, Failed or Cancelled.
  void finish(Job& job, JobState state, int error_status, std::string error, JobResult result);

  // Cancels a job: a queued one at once, a running one at its next step (the worker reads
  // the job's flag). Returns the status after the request, or nullopt for an unknown id.
  std::optional<nlohmann::json> cancel(const std::string& id);
  std::optional<nlohmann::json> status(const std::string& id) const;
  nlohmann::json list() const;
  // The finished job's result (or failure), nullopt while it is not finished or unknown.
  struct Outcome {
    JobState state;
    int error_status;
    std::string error;
    JobResult result;
  };
  std::optional<Outcome> outcome(const std::string& id) const;
  bool known(const std::string& id) const;

  // Blocks until the job's version is not `*seen`, `timeout` passes or the board closes;
  // fills `*status` and `*seen`. False for an unknown id.
  bool wait_change(const std::string& id, uint64_t* seen, std::chrono::milliseconds timeout,
                   nlohmann::json* status) const;

  // Shutdown: refuses new jobs, cancels queued ones and flags the running one.
  void close();
  bool closed() const;
  size_t queued() const;
  bool busy() const;
  // Whether a queued job will change the model before a new one would run.
  bool model_change_queued() const;

 private:
  nlohmann::json status_locked(const Job& job) const;
  void retire_locked(const std::shared_ptr<Job>& job);

  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::deque<std::string> finished_;  // oldest first
  std::shared_ptr<Job> running_;
  size_t max_queued_, keep_finished_;
  bool closed_ = false;
};

}  // namespace raylight::server
