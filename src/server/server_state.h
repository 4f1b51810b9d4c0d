// What rank 0's HTTP threads may know about the ranks without asking them: the model
// loaded now (to check requests before queueing them), the latest memory figures
// (refreshed by every heartbeat and sampling step), and whether the ranks answer: the job
// worker marks each heartbeat's collective, so a heartbeat still waiting after a few seconds
// means a rank has stopped answering, long before the collective timeout ends the server.
// The job worker writes, HTTP threads read; a mutex is all the coordination this needs.
#pragma once

#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "server/load_request.h"
#include "server/rank_memory.h"

namespace raylight::server {

class ServerState {
 public:
  struct Model {
    LoadPlan plan;
    nlohmann::json info;
  };

  explicit ServerState(int world_size) : world_(world_size) {}
  int world_size() const { return world_; }

  void set_model(const LoadPlan* plan, const nlohmann::json& info) {
    std::lock_guard<std::mutex> lock(mu_);
    if (plan) model_ = Model{*plan, info};
    else model_.reset();
  }
  std::optional<Model> model() const {
    std::lock_guard<std::mutex> lock(mu_);
    return model_;
  }

  // The worker, around each idle heartbeat's collective with every rank.
  void heartbeat_begin() {
    std::lock_guard<std::mutex> lock(mu_);
    beat_started_ = std::chrono::steady_clock::now();
    beating_ = true;
  }
  void heartbeat_end() {
    std::lock_guard<std::mutex> lock(mu_);
    beating_ = false;
    last_answer_ = std::chrono::steady_clock::now();
  }
  // Seconds the heartbeat in progress has waited for the ranks (0: none in progress).
  double heartbeat_wait_s() const {
    std::lock_guard<std::mutex> lock(mu_);
    return beating_ ? std::chrono::duration<double>(std::chrono::steady_clock::now() - beat_started_).count() : 0.0;
  }
  // Seconds since every rank last answered a heartbeat (or a sampling step's exchange).
  double since_answer_s() const {
    std::lock_guard<std::mutex> lock(mu_);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - last_answer_).count();
  }

  void set_memory(const std::vector<RankMemory>& m) {
    std::lock_guard<std::mutex> lock(mu_);
    memory_ = m;
    memory_time_ = last_answer_ = std::chrono::steady_clock::now();
  }
  nlohmann::json memory() const {
    std::lock_guard<std::mutex> lock(mu_);
    const double age = memory_.empty() ? 0.0
        : std::chrono::duration<double>(std::chrono::steady_clock::now() - memory_time_).count();
    return {{"ranks", memory_json(memory_)}, {"age_s", age}};
  }

 private:
  mutable std::mutex mu_;
  int world_;
  std::optional<Model> model_;
  std::vector<RankMemory> memory_;
  std::chrono::steady_clock::time_point memory_time_{};
  std::chrono::steady_clock::time_point beat_started_{}, last_answer_ = std::chrono::steady_clock::now();
  bool beating_ = false;
};

}  // namespace raylight::server
