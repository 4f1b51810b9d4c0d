// One rank's memory, as GET /v1/memory reports it. Fixed-size and trivially copyable so the
// ranks can all_gather it in one message (every heartbeat and every sampling step), which
// keeps rank 0's picture current without a request ever waiting on the ranks.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

namespace raylight {
struct LoadedModel;
}

namespace raylight::server {

struct RankMemory {
  int32_t rank = 0;
  int32_t pid = 0;
  double rss_bytes = 0;          // resident set now
  double peak_rss_bytes = 0;     // largest resident set so far
  double weight_bytes = 0;       // weight bytes the rank's store holds (shards, gathers, copies)
  double peak_weight_bytes = 0;
  char host[64] = {};
  char backend[32] = {};
};

// This process's numbers; `model` may be null (no model loaded).
RankMemory measure_memory(int rank, const LoadedModel* model);
nlohmann::json memory_json(const std::vector<RankMemory>& ranks);

}  // namespace raylight::server
