// Job execution on each rank. Failures travel as exceptions inside a phase and as one
// agreed verdict between phases (see rank_executor.h).
#include "server/rank_executor.h"

#include <chrono>
#include <cstring>

#include "core/error.h"
#include "dist/runtime.h"
#include "io/checkpoint.h"
#include "models/wan/wan_tiny.h"
#include "parallel/checkpoint_weights.h"
#include "server/sample_runner.h"

namespace raylight::server {
namespace {

// A failure every rank agreed on.
struct JobFailure {
  int status;
  std::string message;
};
// Thrown on every rank at the same step when rank 0 asks to cancel.
struct JobCancelled {};

// Each rank's error ("" when fine) -> the same verdict on every rank: "" when all are fine,
// else the first failing rank's message (prefixed with its rank when there are several).
std::string agree(Communicator& comm, const std::string& mine) {
  struct Msg {
    int32_t failed;
    char text[500];
  };
  Msg m{};
  m.failed = mine.empty() ? 0 : 1;
  std::strncpy(m.text, mine.c_str(), sizeof m.text - 1);
  std::vector<Msg> all(comm.size());
  comm.all_gather(&m, all.data(), sizeof m);
  for (int r = 0; r < comm.size(); ++r) {
    if (!all[r].failed) continue;
    std::string text(all[r].text, strnlen(all[r].text, sizeof all[r].text));
    return comm.size() > 1 ? "rank " + std::to_string(r) + ": " + text : text;
  }
  return "";
}

std::unique_ptr<WeightStore> open_weights(const std::string& model) {
  if (model == "tiny") return wan_tiny_weights();
  return std::make_unique<CheckpointWeights>(Checkpoint::open(model));
}

}  // namespace

RankExecutor::RankExecutor(Communicator& control, BackendChoice backend, bool verbose)
    : control_(control), backend_(backend), verbose_(verbose) {}

RankExecutor::~RankExecutor() = default;

void RankExecutor::phase(int status, const std::function<void()>& f) {
  std::string err;
  bool cancelled = false;
  try {
    f();
  } catch (const JobCancelled&) {
    cancelled = true;
  } catch (const std::exception& e) {
    err = *e.what() ? e.what() : "unknown error";
  }
  const std::string verdict = agree(control_, err);
  if (!verdict.empty()) throw JobFailure{status, verdict};
  if (cancelled) throw JobCancelled{};
}

std::vector<RankMemory> RankExecutor::gather_memory(bool* cancel_from_rank0, bool cancel) {
  struct Sync {
    int32_t cancel;
    RankMemory memory;
  };
  Sync mine{};
  mine.cancel = cancel ? 1 : 0;
  mine.memory = measure_memory(Runtime::world_rank(), wan_.get());
  std::vector<Sync> all(control_.size());
  control_.all_gather(&mine, all.data(), sizeof mine);
  if (cancel_from_rank0) *cancel_from_rank0 = all[0].cancel != 0;
  std::vector<RankMemory> out;
  for (const Sync& s : all) out.push_back(s.memory);
  return out;
}

void RankExecutor::heartbeat(const JobHooks& hooks) {
  auto mem = gather_memory(nullptr, false);
  if (hooks.memory) hooks.memory(mem);
}

void RankExecutor::unload(const JobHooks& hooks) {
  if (!wan_) return;
  generate_models_.drop();  // they run on the model's backend
  wan_.reset();
  if (hooks.model_changed) hooks.model_changed(nullptr, nullptr);
}

JobOutcome RankExecutor::run(const Command& cmd, const JobHooks& hooks) {
  JobOutcome out;
  try {
    switch (cmd.kind) {
      case CommandKind::Load: out.result = load(cmd, hooks); break;
      case CommandKind::Unload:
        unload(hooks);
        out.result.info = {{"model", nullptr}};
        break;
      case CommandKind::Sample: out.result = sample(cmd, hooks); break;
      case CommandKind::Generate: out.result = generate(cmd, hooks); break;
      default: throw JobFailure{501, "this server cannot run that kind of job"};
    }
    if (out.result.body.empty() && !out.result.info.empty()) {
      out.result.body = out.result.info.dump() + "\n";
      out.result.content_type = "application/json";
    }
  } catch (const JobFailure& f) {
    out.state = JobState::Failed;
    out.status = f.status;
    out.error = f.message;
  } catch (const JobCancelled&) {
    out.state = JobState::Cancelled;
    out.status = 409;
    out.error = "cancelled while running";
  }
  if (hooks.memory) hooks.memory(gather_memory(nullptr, false));
  else gather_memory(nullptr, false);
  return out;
}

JobResult RankExecutor::load(const Command& cmd, const JobHooks& hooks) {
  LoadPlan plan;
  // Checks first: a request that cannot work leaves the current model loaded.
  phase(400, [&] { plan = plan_load(nlohmann::json::parse(cmd.json), Runtime::world_size()); });
  phase(400, [&] {
    if (plan.placement.gpu_memory_limit && resolves_to_cpu(backend_))
      fail("\"gpu_memory_limit_gib\" caps GPU memory; this server's ranks run on the CPU backend, which has none");
  });
  unload(hooks);
  std::unique_ptr<WeightStore> weights;
  std::unique_ptr<Backend> backend;
  phase(500, [&] {
    weights = open_weights(plan.model);
    backend = make_backend(backend_, Runtime::world_rank());
  });
  phase(500, [&] {
    auto w = std::make_unique<LoadedWan>(load_wan(std::move(weights), std::move(backend), plan.layout, plan.placement));
    w->tiny = plan.model == "tiny";
    w->weights->set_verbose(verbose_);
    wan_ = std::move(w);
  });
  JobResult r;
  r.info = describe_model(plan, wan_->backend->name());
  if (hooks.model_changed) hooks.model_changed(&plan, r.info);
  return r;
}

Tensor RankExecutor::sample_planned(const SamplePlan& plan, const JobHooks& hooks) {
  StepHooks steps;
  const bool lead = Runtime::world_rank() == 0;
  steps.before_step = [&] {
    bool cancel = false;
    auto mem = gather_memory(&cancel, lead && hooks.cancelled && hooks.cancelled());
    if (hooks.memory) hooks.memory(mem);
    if (cancel) throw JobCancelled{};
  };
  steps.after_step = [&](int done, int total) {
    if (hooks.progress) hooks.progress(done, total);
  };
  const int64_t dp = wan_->groups.layout.dp;
  if (hooks.progress) hooks.progress(0, static_cast<int>((plan.batch + dp - 1) / dp) * plan.steps());
  Tensor latent;
  phase(500, [&] { latent = run_sample(*wan_, plan, steps); });
  return latent;
}

JobResult RankExecutor::sample(const Command& cmd, const JobHooks& hooks) {
  if (!wan_) throw JobFailure{409, "no model is loaded; load one first (POST /v1/models/load)"};
  SamplePlan plan;
  phase(400, [&] {
    plan = plan_sample(parse_sample_body(cmd.blob), wan_->model->config(), wan_->tiny);
    check_layout(plan, wan_->groups.layout);
  });
  const auto t0 = std::chrono::steady_clock::now();
  Tensor latent = sample_planned(plan, hooks);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  JobResult r;
  if (Runtime::world_rank() != 0) return r;
  r.info = plan.describe();
  r.info["seconds"] = secs;
  r.info["model"] = wan_->model->config().variant();
  r.body = encode_safetensors({{"latent", latent}},
                              {{"raylight.model", wan_->model->config().variant()},
                               {"raylight.request", r.info.dump()}});
  r.content_type = "application/octet-stream";
  return r;
}

JobResult RankExecutor::generate(const Command& cmd, const JobHooks& hooks) {
  if (!wan_) throw JobFailure{409, "no model is loaded; load one first (POST /v1/models/load)"};
  const bool lead = Runtime::world_rank() == 0;
  const WanConfig& config = wan_->model->config();
  GenerateRequest req;
  phase(400, [&] { req = parse_generate_request(nlohmann::json::parse(cmd.json), config, wan_->tiny); });
  // Rank 0 encodes the prompts; the embeddings travel to the other ranks as a safetensors body.
  std::string embeddings;
  phase(500, [&] {
    if (!lead) return;
    std::vector<std::pair<std::string, Tensor>> t = {
        {"context", generate_models_.encode(req, req.prompt, *wan_->backend, config)}};
    const double cfg = req.sample_params.value("cfg", 5.0);
    if (cfg != 1.0) t.emplace_back("negative", generate_models_.encode(req, req.negative_prompt, *wan_->backend, config));
    embeddings = encode_safetensors(t, {{"request", req.sample_params.dump()}});
  });
  uint64_t bytes = embeddings.size();
  control_.broadcast(&bytes, sizeof bytes, 0);
  embeddings.resize(bytes);
  control_.broadcast(embeddings.data(), bytes, 0);
  SamplePlan plan;
  phase(400, [&] {
    plan = plan_sample(parse_sample_body(embeddings), config, wan_->tiny);
    check_layout(plan, wan_->groups.layout);
    if (plan.batch != 1) fail("generate makes one video at a time");
  });
  const auto t0 = std::chrono::steady_clock::now();
  Tensor latent = sample_planned(plan, hooks);
  JobResult r;
  phase(500, [&] {
    if (lead) r.body = generate_models_.render(req, *wan_->backend, latent, &r.content_type);
  });
  if (!lead) return JobResult{};
  r.info = plan.describe();
  r.info["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.info["format"] = req.format;
  r.info["bytes"] = r.body.size();
  return r;
}

}  // namespace raylight::server
