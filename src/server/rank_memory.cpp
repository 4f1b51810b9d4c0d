// Memory figures from the kernel (/proc/self/statm for the current resident set,
// getrusage for the peak) and from the weight store, which knows what it holds.
#include "server/rank_memory.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "pipeline/model_loader.h"

namespace raylight::server {

RankMemory measure_memory(int rank, const LoadedModel* model) {
  RankMemory m;
  m.rank = rank;
  m.pid = static_cast<int32_t>(::getpid());
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    long size = 0, resident = 0;
    if (std::fscanf(f, "%ld %ld", &size, &resident) == 2)
      m.rss_bytes = static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
    std::fclose(f);
  }
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  m.peak_rss_bytes = static_cast<double>(u.ru_maxrss) * 1024.0;  // Linux reports KiB
  if (model && model->weights) {
    m.weight_bytes = static_cast<double>(model->weights->held_bytes());
    m.peak_weight_bytes = static_cast<double>(model->weights->peak_held_bytes());
  }
  ::gethostname(m.host, sizeof m.host - 1);
  std::snprintf(m.backend, sizeof m.backend, "%s", model && model->backend ? model->backend->name().c_str() : "none");
  return m;
}

nlohmann::json memory_json(const std::vector<RankMemory>& ranks) {
  nlohmann::json out = nlohmann::json::array();
  for (const RankMemory& m : ranks)
    out.push_back({{"rank", m.rank},
                   {"pid", m.pid},
                   {"host", std::string(m.host, strnlen(m.host, sizeof m.host))},
                   {"backend", std::string(m.backend, strnlen(m.backend, sizeof m.backend))},
                   {"rss_bytes", m.rss_bytes},
                   {"peak_rss_bytes", m.peak_rss_bytes},
                   {"weight_bytes", m.weight_bytes},
                   {"peak_weight_bytes", m.peak_weight_bytes}});
  return out;
}

}  // namespace raylight::server
