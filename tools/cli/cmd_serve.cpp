// raylight serve: keeps a model loaded on the ranks and samples for HTTP clients (the
// ComfyUI node pack, scripts). This file only turns options into ServeOptions; the server
// lives in src/server. Ranks come from the shared parallel flags (--ranks / --gpus start
// them through mpirun, as for `sample`); the layout of a model is chosen per load request,
// or here with --model for a model loaded at start.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "backend/backend_select.h"
#include "commands.h"
#include "core/error.h"
#include "options.h"
#include "parallel_options.h"
#include "dist/runtime.h"
#include "server/listen_address.h"
#include "server/load_request.h"
#include "server/request_gate.h"
#include "server/serve.h"

namespace raylight::cli {

static constexpr const char* kHelp =
    "usage: raylight serve [options]\n"
    "  --devices             print {\"gpus\": N, \"cuda_build\": ...} (the GPUs a server here could\n"
    "                        use) and exit\n"
    "  --listen HOST:PORT    address to serve HTTP on (127.0.0.1:8690); port 0 picks a free one.\n"
    "                        Addresses other than loopback need a token.\n"
    "  --token-file FILE     clients must send 'Authorization: Bearer <token>' with the token\n"
    "                        in FILE (or in the RAYLIGHT_TOKEN environment variable)\n"
    "  --port-file FILE      write the bound port to FILE once listening (removed at exit)\n"
    "  --parent-pid PID      shut down when process PID ends (the ComfyUI pack passes its own)\n"
    "  --models-dir DIR[:DIR...]  files named in requests (model, text_encoder, vae,\n"
    "                        tokenizer) must lie inside these folders (default: anywhere)\n"
    "  --model FILE|tiny     load this model at start (else: POST /v1/models/load); the\n"
    "                        layout flags below (--ulysses, --ring, --cfg-parallel, --dp,\n"
    "                        --fsdp, --offload, --gpu-memory-limit) apply to it\n"
    "  --max-body-mb N       largest request body in MiB (512)\n"
    "  --max-body-total-mb N request bodies received at once, all clients together (1024)\n"
    "  --idle-timeout S      seconds a client may stay silent (30)\n"
    "  --request-timeout S   seconds a client may take to send one request (300)\n"
    "  --head-timeout S      seconds a new connection has to send a whole, accepted request\n"
    "                        head, however it drips (10)\n"
    "  --max-connections N   simultaneous connections (64); when all are taken, a new one\n"
    "                        displaces the oldest that has not sent an accepted head\n"
    "  --max-queue N         jobs waiting behind the running one (32)\n"
    "  --job-memory-gib G    refuse jobs estimated to need more memory per rank (default:\n"
    "                        this machine's physical memory)\n";

int run_serve(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      std::fputs(kHelp, stdout);
      std::fputs(kParallelHelp, stdout);
      return 0;
    }
  // What a server started here could run on, for clients choosing ranks (the node pack's
  // "auto"): one JSON line, nothing started.
  if (args.size() == 1 && args[0] == "--devices") {
    std::printf("{\"gpus\": %d, \"cuda_build\": %s}\n", usable_gpus(),
#ifdef RAYLIGHT_HAVE_CUDA
                "true"
#else
                "false"
#endif
    );
    return 0;
  }
  std::set<std::string> valued = {"listen", "token-file", "port-file", "model", "max-body-mb",
                                  "idle-timeout", "request-timeout", "head-timeout", "models-dir", "parent-pid", "job-memory-gib", "max-connections", "max-queue",
                                  "max-body-total-mb"};
  valued.insert(kParallelValued.begin(), kParallelValued.end());
  Options opt(args, valued, kParallelFlags);
  parse_parallel(opt);  // checks --ranks against the job and applies --timeout

  server::ServeOptions so;
  const server::ListenAddress where = server::parse_listen(opt.str("listen", "127.0.0.1:8690"));
  so.http.host = where.host;
  so.http.port = where.port;
  if (opt.has("token-file")) {
    std::ifstream f(opt.str("token-file", ""));
    if (!f) fail("cannot read --token-file ", opt.str("token-file", ""));
    std::string line;
    std::getline(f, line);
    so.token = server::checked_token(line, "--token-file " + opt.str("token-file", ""));
  } else if (const char* t = std::getenv("RAYLIGHT_TOKEN"); t && *t) {
    so.token = server::checked_token(t, "RAYLIGHT_TOKEN");
  }
  if (!server::is_loopback(so.http.host) && so.token.empty())
    fail("--listen ", so.http.host, " is reachable from other machines: set a token with --token-file FILE "
         "or RAYLIGHT_TOKEN (loopback addresses need none)");
  so.port_file = opt.str("port-file", "");
  const int64_t parent = opt.integer("parent-pid", 0);
  if (parent < 0 || parent > INT32_MAX) fail("--parent-pid must be a process id, got ", parent);
  so.parent_pid = static_cast<int>(parent);
  const double job_gib = opt.number("job-memory-gib", 0);
  if (!(job_gib >= 0) || job_gib > 1e6) fail("--job-memory-gib must be a number of GiB (0: this machine's memory)");
  so.job_memory_bytes = job_gib * 1073741824.0;
  if (opt.has("models-dir")) {
    const std::string dirs = opt.str("models-dir", "");
    for (size_t start = 0; start <= dirs.size();) {
      size_t colon = dirs.find(':', start);
      if (colon == std::string::npos) colon = dirs.size();
      const std::string dir = dirs.substr(start, colon - start);
      std::error_code ec;
      if (!dir.empty() && std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec))
        fail("--models-dir: ", dir, " is not a directory");
      if (!dir.empty() && !std::filesystem::exists(dir, ec))  // may be made later (ComfyUI's folders are)
        std::fprintf(stderr, "raylight serve: --models-dir %s does not exist (yet)\n", dir.c_str());
      if (!dir.empty()) so.models_dirs.push_back(dir);
      start = colon + 1;
    }
    if (so.models_dirs.empty()) fail("--models-dir needs at least one directory");
  }
  const int64_t body_mb = opt.integer("max-body-mb", 512);
  if (body_mb < 1 || body_mb > 65536) fail("--max-body-mb must be from 1 to 65536, got ", body_mb);
  so.http.limits.max_body_bytes = static_cast<size_t>(body_mb) << 20;
  so.http.idle_timeout_s = opt.number("idle-timeout", 30);
  so.http.request_timeout_s = opt.number("request-timeout", 300);
  if (!(so.http.idle_timeout_s > 0) || !(so.http.request_timeout_s > 0))
    fail("--idle-timeout and --request-timeout must be positive");
  so.http.head_timeout_s = opt.number("head-timeout", 10);
  if (!(so.http.head_timeout_s > 0)) fail("--head-timeout must be positive");
  so.http.max_connections = static_cast<int>(opt.integer("max-connections", 64));
  if (so.http.max_connections < 1 || so.http.max_connections > 4096)
    fail("--max-connections must be from 1 to 4096");
  const int64_t total_mb = opt.integer("max-body-total-mb", std::max<int64_t>(1024, body_mb));
  if (total_mb < body_mb || total_mb > 1 << 20)
    fail("--max-body-total-mb must be at least --max-body-mb (", body_mb, ") and at most 1048576");
  so.http.max_body_total_bytes = static_cast<size_t>(total_mb) << 20;
  const int64_t queue = opt.integer("max-queue", 32);
  if (queue < 1) fail("--max-queue must be at least 1");
  so.max_queue = static_cast<size_t>(queue);
  so.backend = parse_device(opt);
  // The server's default attention kernel for every model it loads (a load request's
  // "attention" overrides it): what RAYLIGHT_ATTENTION sets, for this process.
  if (const std::string attention = parse_attention(opt); !attention.empty()) {
    if (resolves_to_cpu(so.backend)) fail("--attention ", attention, " chooses a CUDA attention kernel; this server runs on the CPU");
    setenv("RAYLIGHT_ATTENTION", attention.c_str(), 1);
  }
  so.verbose = opt.flag("verbose");

  const bool layout_flags = opt.has("ulysses") || opt.has("ring") || opt.has("dp") ||
                            opt.flag("cfg-parallel") || opt.flag("fsdp") || opt.flag("offload") ||
                            opt.has("gpu-memory-limit");
  if (opt.has("model")) {
    nlohmann::json load = {{"model", opt.str("model", "tiny")},
                           {"cfg_parallel", opt.flag("cfg-parallel")},
                           {"fsdp", opt.flag("fsdp")},
                           {"offload", opt.flag("offload")}};
    if (opt.has("ulysses")) load["ulysses"] = opt.integer("ulysses", 1);
    if (opt.has("ring")) load["ring"] = opt.integer("ring", 1);
    if (opt.has("dp")) load["dp"] = opt.integer("dp", 1);
    if (opt.has("gpu-memory-limit")) load["gpu_memory_limit_gib"] = opt.number("gpu-memory-limit", 0);
    // --lora FILE[:S] (repeatable), --lora-merge, --lora-skip-unmatched: the load request's fields.
    const LoraOptions loras = parse_placement(opt).loras;
    if (!loras.empty()) {
      load["loras"] = nlohmann::json::array();
      for (const auto& f : loras.files) load["loras"].push_back({{"path", f.path}, {"strength", f.strength}});
      load["lora_merge"] = loras.merge_fp8;
      load["lora_skip_unmatched"] = loras.skip_unmatched;
    }
    server::plan_load(load, Runtime::world_size());  // a model that cannot load fails here, at once
    so.preload = load;
  } else if (opt.has("lora") || opt.flag("lora-merge") || opt.flag("lora-skip-unmatched")) {
    fail("--lora applies to --model; without --model, send \"loras\" in the load request or POST /v1/models/loras");
  } else if (layout_flags) {
    fail("--ulysses, --ring, --cfg-parallel, --dp, --fsdp, --offload and --gpu-memory-limit describe how --model is loaded; "
         "without --model, send them in the load request");
  }
  return server::run_serve(so);
}

}  // namespace raylight::cli
