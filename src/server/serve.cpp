// The serve loop of each rank (see serve.h). Rank 0 sends a heartbeat when it has been idle
// for a second, which refreshes every rank's memory figures.
#include "server/serve.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>

#include "core/error.h"
#include "dist/runtime.h"
#include "io/output_file.h"
#include "server/api.h"
#include "server/job_board.h"
#include "server/job_estimate.h"
#include "server/listen_address.h"
#include "server/parent_watch.h"
#include "server/rank_channel.h"
#include "server/rank_executor.h"
#include "server/server_state.h"
#include "server/stop_signal.h"

namespace raylight::server {
namespace {

using Clock = std::chrono::steady_clock;

CommandKind command_of(JobKind k) {
  switch (k) {
    case JobKind::Load: return CommandKind::Load;
    case JobKind::Unload: return CommandKind::Unload;
    case JobKind::Sample: return CommandKind::Sample;
    case JobKind::Generate: return CommandKind::Generate;
    case JobKind::Loras: return CommandKind::Loras;
    case JobKind::TextEncode: return CommandKind::TextEncode;
    case JobKind::VaeDecode: return CommandKind::VaeDecode;
    case JobKind::VaeEncode: return CommandKind::VaeEncode;
  }
  return CommandKind::Heartbeat;
}

// The port file exists exactly while the server listens: written (atomically) once it
// does, removed however rank 0 leaves - a return, an exception, or a stop signal (the
// handler unlinks it, since mpirun may kill the rank right after signalling it).
class PortFile {
 public:
  PortFile(const std::string& path, int port) : path_(path) {
    if (path_.empty()) return;
    // By the output policy of every file the engine writes (io/output_file.h).
    write_output_file(path_, [&](const std::string& tmp) {
      std::ofstream f(tmp);
      f << port << "\n";
      f.close();
      if (!f) fail("cannot write the port file ", tmp);
    });
    unlink_on_stop_signal(path_);
  }
  ~PortFile() { remove(); }
  void remove() {
    if (path_.empty()) return;
    unlink_on_stop_signal("");
    std::remove(path_.c_str());
    path_.clear();
  }

 private:
  std::string path_;
};

int follow_rank0(RankChannel& channel, RankExecutor& exec) {
  for (;;) {
    Command cmd = channel.receive();
    if (cmd.kind == CommandKind::Exit) break;
    if (cmd.kind == CommandKind::Heartbeat) exec.heartbeat({});
    else exec.run(cmd, {});
  }
  exec.unload({});
  return 0;
}

}  // namespace

int run_serve(const ServeOptions& opt) {
  install_stop_signals();
  RankChannel channel;
  RankExecutor exec(channel, opt.backend, opt.verbose);
  if (Runtime::world_rank() != 0) return follow_rank0(channel, exec);

  JobBoard board(opt.max_queue, 16);  // results are latents or videos: keep the last 16
  ServerState state(Runtime::world_size());
  std::atomic<bool> asked_to_stop{false};
  std::optional<ParentWatch> parent;
  auto stopping = [&] { return asked_to_stop.load() || stop_signalled() || (parent && parent->gone()); };
  ApiConfig api_config;
  api_config.token = opt.token;
  api_config.loopback = is_loopback(opt.http.host);
  api_config.limits = opt.http.limits;
  api_config.models_dirs = opt.models_dirs;
  api_config.cpu_ranks = resolves_to_cpu(opt.backend);
  api_config.job_memory_bytes = opt.job_memory_bytes > 0 ? opt.job_memory_bytes : machine_memory_bytes();
  Api api(api_config, board, state, [&] { asked_to_stop = true; }, stopping);
  HttpServer http(opt.http, [&](HttpRequest& r) { return api.handle(r); },
                  [&](const HttpRequest& r, size_t length) { return api.check_head(r, length); });
  std::optional<PortFile> port_file;
  try {
    parent.emplace(opt.parent_pid);
    http.start();
    port_file.emplace(opt.port_file, http.port());
  } catch (...) {
    channel.send({CommandKind::Exit, {}, {}});
    throw;
  }
  std::fprintf(stderr, "raylight serve: listening on http://%s%s%s:%d (%d rank%s)%s\n",
               opt.http.host.find(':') != std::string::npos ? "[" : "", opt.http.host.c_str(),
               opt.http.host.find(':') != std::string::npos ? "]" : "", http.port(),
               Runtime::world_size(), Runtime::world_size() == 1 ? "" : "s",
               opt.token.empty() ? "" : ", token required");

  JobHooks base;
  base.memory = [&](const std::vector<RankMemory>& m) { state.set_memory(m); };
  base.model_changed = [&](const LoadPlan* plan, const nlohmann::json& info) { state.set_model(plan, info); };
  if (opt.preload) board.submit(JobKind::Load, *opt.preload);

  const double beat_s = 1.0;
  auto beat = [&] {
    state.heartbeat_begin();
    channel.send({CommandKind::Heartbeat, {}, {}});
    exec.heartbeat(base);
    state.heartbeat_end();
  };
  beat();
  auto last_beat = Clock::now();
  while (!stopping()) {
    std::shared_ptr<Job> job = board.next(std::chrono::milliseconds(100));
    if (!job) {
      if (std::chrono::duration<double>(Clock::now() - last_beat).count() >= beat_s) {
        beat();
        last_beat = Clock::now();
      }
      continue;
    }
    JobHooks hooks = base;
    hooks.cancelled = [&] { return job->cancel.load() || stopping(); };
    hooks.progress = [&](int done, int total) { board.progress(*job, done, total); };
    const Command cmd{command_of(job->kind), job->params.dump(), job->payload};
    const auto t0 = Clock::now();
    JobOutcome out;
    try {
      channel.send(cmd);
      out = exec.run(cmd, hooks);
    } catch (const std::exception& e) {
      board.finish(*job, JobState::Failed, 500, e.what(), {});
      throw;  // the ranks may be out of step: end the job (main aborts every rank)
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    std::fprintf(stderr, "raylight serve: job %s (%s) %s in %.2f s%s%s\n", job->id.c_str(),
                 job_kind_name(job->kind), job_state_name(out.state), secs, out.error.empty() ? "" : ": ",
                 out.error.c_str());
    board.finish(*job, out.state, out.status, out.error, std::move(out.result));
    last_beat = Clock::now();
  }
  std::fprintf(stderr, "raylight serve: shutting down%s\n",
               parent->gone() ? " (the parent process given by --parent-pid has ended)" : "");
  port_file->remove();  // no new clients while the rest shuts down
  board.close();
  channel.send({CommandKind::Exit, {}, {}});
  exec.unload(base);
  http.stop();
  return 0;
}

}  // namespace raylight::server
