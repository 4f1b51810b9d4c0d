// The HTTP API of `raylight serve` (rank 0). Routes requests, checks them completely
// before anything is queued (a bad request gets a 4xx with a message and changes nothing),
// and turns jobs into responses: JSON for everything except tensors, which travel as
// safetensors bodies. docs/server.md lists the endpoints.
//
// The handler never talks to the other ranks: it reads ServerState and the JobBoard, and
// the job worker on rank 0's main thread does the rest, so a slow job never blocks a
// status request.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "server/http_message.h"
#include "server/job_board.h"
#include "server/request_gate.h"
#include "server/server_state.h"

namespace raylight::server {

struct ApiConfig {
  std::string token;     // empty: no Authorization header needed
  bool loopback = true;  // listening on loopback: Host must name it (request_gate.h)
  HttpLimits limits;
  std::vector<std::string> models_dirs;  // when set, client-named files must lie inside
  bool cpu_ranks = false;  // the ranks run on the CPU backend (no GPU memory to cap)
  double unresponsive_s = 3;  // a heartbeat waiting this long: a rank does not answer
  double job_memory_bytes = 0;  // a job estimated to need more per rank is refused (0: no check)
};

class Api {
 public:
  Api(ApiConfig config, JobBoard& board, ServerState& state, std::function<void()> request_shutdown,
      std::function<bool()> stopping);
  // The HTTP server's head check: whether the request may go on before its body is read.
  std::optional<HttpResponse> check_head(const HttpRequest& req, size_t content_length) const;
  HttpResponse handle(HttpRequest& req);

 private:
  HttpResponse health() const;
  bool unresponsive() const;
  HttpResponse load(HttpRequest& req);
  HttpResponse unload(HttpRequest& req);
  HttpResponse loras(HttpRequest& req);
  HttpResponse sample(HttpRequest& req);
  HttpResponse generate(HttpRequest& req);
  // The part endpoints (part_jobs.h).
  HttpResponse text_encode(HttpRequest& req);
  HttpResponse vae_job(HttpRequest& req, bool decode);
  HttpResponse job(const std::string& method, const std::string& id, const std::string& what,
                   const HttpRequest& req);
  HttpResponse submit(JobKind kind, nlohmann::json params, std::string payload, const HttpRequest& req);
  HttpResponse result(const std::string& id, bool wait);
  HttpResponse events(const std::string& id);

  ApiConfig config_;
  JobBoard& board_;
  ServerState& state_;
  std::function<void()> request_shutdown_;
  std::function<bool()> stopping_;
};

}  // namespace raylight::server
