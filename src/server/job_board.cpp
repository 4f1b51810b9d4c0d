// Job bookkeeping. Ids are random (128 bits from the system's generator) so a client
// cannot guess or cancel another client's job by counting.
#include "server/job_board.h"

#include <algorithm>
#include <random>

namespace raylight::server {
namespace {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string new_id() {
  static std::mutex mu;
  static std::random_device rd;
  std::lock_guard<std::mutex> lock(mu);
  static const char* hex = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 4; ++i) {
    uint32_t v = rd();
    for (int j = 0; j < 8; ++j, v >>= 4) id += hex[v & 15];
  }
  return id;
}

}  // namespace

const char* job_kind_name(JobKind k) {
  switch (k) {
    case JobKind::Load: return "load";
    case JobKind::Unload: return "unload";
    case JobKind::Sample: return "sample";
    case JobKind::Generate: return "generate";
    case JobKind::Loras: return "loras";
    case JobKind::TextEncode: return "text_encode";
    case JobKind::VaeDecode: return "vae_decode";
    case JobKind::VaeEncode: return "vae_encode";
  }
  return "?";
}

const char* job_state_name(JobState s) {
  switch (s) {
    case JobState::Queued: return "queued";
    case JobState::Running: return "running";
    case JobState::Succeeded: return "succeeded";
    case JobState::Failed: return "failed";
    case JobState::Cancelled: return "cancelled";
  }
  return "?";
}

JobBoard::JobBoard(size_t max_queued, size_t keep_finished)
    : max_queued_(max_queued), keep_finished_(keep_finished) {}

std::string JobBoard::submit(JobKind kind, nlohmann::json params, std::string payload) {
  auto job = std::make_shared<Job>();
  job->id = new_id();
  job->kind = kind;
  job->params = std::move(params);
  job->payload = std::move(payload);
  job->created = unix_now();
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) throw Refused{503, "the server is shutting down"};
  if (queue_.size() >= max_queued_)
    throw Refused{429, "the queue is full (" + std::to_string(max_queued_) + " jobs); try again later"};
  jobs_[job->id] = job;
  queue_.push_back(job);
  changed_.notify_all();
  return job->id;
}

std::shared_ptr<Job> JobBoard::next(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!changed_.wait_for(lock, timeout, [&] { return !queue_.empty(); })) return nullptr;
  std::shared_ptr<Job> job = queue_.front();
  queue_.pop_front();
  job->state = JobState::Running;
  job->started = unix_now();
  ++job->version;
  running_ = job;
  for (auto& q : queue_) ++q->version;  // positions moved
  changed_.notify_all();
  return job;
}

void JobBoard::progress(const Job& job, int step, int total) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& j = const_cast<Job&>(job);
  j.step = step;
  j.total = total;
  ++j.version;
  changed_.notify_all();
}

void JobBoard::finish(Job& job, JobState state, int error_status, std::string error, JobResult result) {
  std::lock_guard<std::mutex> lock(mu_);
  job.state = state;
  job.error_status = error_status;
  job.error = std::move(error);
  job.result = std::move(result);
  job.finished = unix_now();
  job.payload.clear();
  job.payload.shrink_to_fit();
  ++job.version;
  if (running_.get() == &job) running_.reset();
  retire_locked(jobs_.at(job.id));
  changed_.notify_all();
}

void JobBoard::retire_locked(const std::shared_ptr<Job>& job) {
  finished_.push_back(job->id);
  while (finished_.size() > keep_finished_) {
    jobs_.erase(finished_.front());
    finished_.pop_front();
  }
}

std::optional<nlohmann::json> JobBoard::cancel(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  Job& job = *it->second;
  if (job.state == JobState::Queued) {
    queue_.erase(std::find(queue_.begin(), queue_.end(), it->second));
    job.state = JobState::Cancelled;
    job.error_status = 409;
    job.error = "cancelled before it started";
    job.finished = unix_now();
    job.payload.clear();
    ++job.version;
    for (auto& q : queue_) ++q->version;
    retire_locked(it->second);
    changed_.notify_all();
  } else if (job.state == JobState::Running) {
    job.cancel = true;
    ++job.version;
    changed_.notify_all();
  }
  return status_locked(job);
}

nlohmann::json JobBoard::status_locked(const Job& job) const {
  nlohmann::json s = {{"id", job.id},
                      {"kind", job_kind_name(job.kind)},
                      {"state", job_state_name(job.state)},
                      {"step", job.step},
                      {"total", job.total},
                      {"created", job.created}};
  if (job.state == JobState::Queued) {
    auto pos = std::find_if(queue_.begin(), queue_.end(), [&](const auto& q) { return q.get() == &job; });
    s["position"] = static_cast<int>(pos - queue_.begin()) + (running_ ? 1 : 0);
  }
  if (job.started > 0) s["started"] = job.started;
  if (job.finished > 0) s["finished"] = job.finished;
  if (job.state == JobState::Running && job.cancel) s["cancelling"] = true;
  if (job.started > 0)
    s["elapsed_s"] = (job.finished > 0 ? job.finished : unix_now()) - job.started;
  if (!job.error.empty()) s["error"] = job.error;
  if (job.state == JobState::Succeeded && !job.result.info.empty()) s["result"] = job.result.info;
  return s;
}

std::optional<nlohmann::json> JobBoard::status(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  return status_locked(*it->second);
}

nlohmann::json JobBoard::list() const {
  std::lock_guard<std::mutex> lock(mu_);
  nlohmann::json out = nlohmann::json::array();
  std::vector<const Job*> all;
  for (const auto& [id, job] : jobs_) all.push_back(job.get());
  std::sort(all.begin(), all.end(), [](const Job* a, const Job* b) { return a->created < b->created; });
  for (const Job* j : all) out.push_back(status_locked(*j));
  return out;
}

std::optional<JobBoard::Outcome> JobBoard::outcome(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end() || !job_final(it->second->state)) return std::nullopt;
  const Job& j = *it->second;
  return Outcome{j.state, j.error_status, j.error, j.result};
}

bool JobBoard::known(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return jobs_.count(id) != 0;
}

bool JobBoard::wait_change(const std::string& id, uint64_t* seen, std::chrono::milliseconds timeout,
                           nlohmann::json* status) const {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return false;
  std::shared_ptr<Job> job = it->second;  // stays valid even if it ages out meanwhile
  changed_.wait_for(lock, timeout, [&] { return job->version != *seen; });
  *seen = job->version;
  *status = status_locked(*job);
  return true;
}

void JobBoard::close() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
  while (!queue_.empty()) {
    std::shared_ptr<Job> job = queue_.front();
    queue_.pop_front();
    job->state = JobState::Cancelled;
    job->error_status = 503;
    job->error = "the server shut down before the job started";
    job->finished = unix_now();
    ++job->version;
    retire_locked(job);
  }
  if (running_) {
    running_->cancel = true;
    ++running_->version;
  }
  changed_.notify_all();
}

bool JobBoard::closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

size_t JobBoard::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

bool JobBoard::busy() const {
  std::lock_guard<std::mutex> lock(mu_);
  return running_ != nullptr;
}

bool JobBoard::model_change_queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& j : queue_)
    if (j->kind == JobKind::Load || j->kind == JobKind::Unload) return true;
  return running_ && (running_->kind == JobKind::Load || running_->kind == JobKind::Unload);
}

}  // namespace raylight::server
