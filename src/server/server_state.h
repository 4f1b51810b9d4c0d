// What rank 0's HTTP threads may know about the ranks without asking them: the model
// loaded now (to check requests before queueing them) and the latest memory figures
// (refreshed by every heartbeat and sampling step). The job worker writes, HTTP threads
// read; a mutex is all the coordination this needs.
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

  void set_memory(const std::vector<RankMemory>& m) {
    std::lock_guard<std::mutex> lock(mu_);
    memory_ = m;
    memory_time_ = std::chrono::steady_clock::now();
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
};

}  // namespace raylight::server
