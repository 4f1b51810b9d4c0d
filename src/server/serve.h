// `raylight serve`: every rank calls run_serve. Rank 0 listens for HTTP and runs the job
// worker on its main thread (the thread allowed to call MPI); every other rank waits for
// rank 0's commands. One job runs on the ranks at a time, in arrival order; requests are
// answered by HTTP threads meanwhile. Returns when asked to stop (POST /v1/shutdown,
// SIGINT, SIGTERM): the running job is cancelled at its next step, queued jobs are
// cancelled, the ranks exit together.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend_select.h"
#include "server/http_server.h"

namespace raylight::server {

struct ServeOptions {
  HttpServerOptions http;          // host, port, limits, timeouts
  std::string token;               // required from clients when not empty
  std::string port_file;           // rank 0 writes the bound port here once listening
  std::vector<std::string> models_dirs;  // client-named files must lie inside (empty: anywhere)
  int parent_pid = 0;              // stop when this process ends (0: never)
  double job_memory_bytes = 0;     // refuse jobs estimated to need more per rank (0: the machine's memory)
  size_t max_queue = 32;
  BackendChoice backend = BackendChoice::Auto;
  bool verbose = false;            // each rank prints its weight memory after every block
  std::optional<nlohmann::json> preload;  // a load request queued at start
};

int run_serve(const ServeOptions& options);

}  // namespace raylight::server
