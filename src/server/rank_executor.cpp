// Job execution on each rank. Failures travel as exceptions inside a phase and as one
// agreed verdict between phases (see rank_executor.h).
#include "server/rank_executor.h"

#include <chrono>
#include <cstring>

#include "core/error.h"
#include "dist/runtime.h"
#include "models/registry.h"
#include "pipeline/reference_images.h"
#include "pipeline/sample_job.h"
#include "server/client_files.h"
#include "server/lora_request.h"
#include "server/part_jobs.h"
#include "server/safetensors_body.h"

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

}  // namespace

RankExecutor::RankExecutor(RankChannel& channel, BackendChoice backend, bool verbose)
    : channel_(channel), control_(channel.comm()), backend_(backend), verbose_(verbose) {}

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
  mine.memory = measure_memory(Runtime::world_rank(), model_.get());
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
  if (!model_) return;
  generate_models_.drop();  // they run on the model's backend
  stoppable_ = nullptr;
  stoppable_low_ = nullptr;
  model_.reset();
  forward_group_.reset();
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
      case CommandKind::Loras: out.result = loras(cmd, hooks); break;
      case CommandKind::TextEncode: out.result = text_encode(cmd); break;
      case CommandKind::VaeDecode: out.result = vae_decode(cmd); break;
      case CommandKind::VaeEncode: out.result = vae_encode(cmd); break;
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
    if (!plan.attention.empty() && resolves_to_cpu(backend_))
      fail("\"attention\" chooses a CUDA attention kernel; this server's ranks run on the CPU backend");
  });
  unload(hooks);
  std::unique_ptr<WeightStore> weights;
  std::unique_ptr<Backend> backend;
  phase(500, [&] {
    weights = open_client_store("model", plan.model, PartKind::Denoiser);
    backend = make_backend(backend_, Runtime::world_rank(), plan.attention);
  });
  phase(500, [&] {
    auto m = std::make_unique<LoadedModel>(
        load_model(std::move(weights), std::move(backend), plan.layout, plan.placement, plan.model, plan.variant));
    if (!plan.model_low.empty()) {
      DenoiserWeights low = as_denoiser(open_client_store("model_low", plan.model_low, PartKind::Denoiser),
                                        plan.model_low, plan.variant_low);
      add_low_noise_expert(*m, std::move(low.weights), low.spec, plan.model_low, plan.loras_low);
    }
    model_ = std::move(m);
    wrap_denoiser();
  });
  plan_ = plan;
  // The ranks that go block by block together: a sequence-parallel group, or with FSDP
  // (weights gathered by every rank per block) all of them.
  const ParallelLayout& layout = model_->groups.layout;
  const MeshCoords& at = model_->groups.coords;
  forward_group_ = channel_.split(plan.placement.fsdp ? 0 : at.dp * layout.cfg + at.cfg, "forward");
  JobResult r;
  r.info = describe_model(plan, model_->backend->name());
  if (hooks.model_changed) hooks.model_changed(&plan, r.info);
  return r;
}

void RankExecutor::wrap_denoiser() {
  model_->weights->set_verbose(verbose_);
  auto stoppable = std::make_unique<StoppableDenoiser>(std::move(model_->denoiser));
  stoppable_ = stoppable.get();
  model_->denoiser = std::move(stoppable);
  stoppable_low_ = nullptr;
  if (LowNoiseExpert* low = model_->low_noise.get()) {
    low->weights->set_verbose(verbose_);
    auto stoppable_low = std::make_unique<StoppableDenoiser>(std::move(low->denoiser));
    stoppable_low_ = stoppable_low.get();
    low->denoiser = std::move(stoppable_low);
  }
}

JobResult RankExecutor::loras(const Command& cmd, const JobHooks& hooks) {
  if (!model_) throw JobFailure{409, "no model is loaded; load one first (POST /v1/models/load)"};
  LoraOptions options, low;
  phase(400, [&] {
    const nlohmann::json j = nlohmann::json::parse(cmd.json);
    options = parse_lora_fields(j);
    low = parse_lora_fields(j, "loras_low");
    for (const auto& path : lora_paths(options)) check_client_path("loras", path, {});
    for (const auto& path : lora_paths(low)) check_client_path("loras_low", path, {});
  });
  // A file that does not fit is refused before anything changes (apply_loras plans first);
  // every rank reads the files itself, as each reads its own weights.
  std::vector<std::string> notes;
  try {
    phase(400, [&] {
      StoppableDenoiser* before = stoppable_;
      stoppable_ = nullptr;
      try {
        apply_pair_loras(*model_, options, low, &notes);
      } catch (...) {
        // Refused before the model changed: the wrapped denoisers are still the ones loaded.
        if (model_->denoiser.get() == before) stoppable_ = before;
        throw;
      }
      wrap_denoiser();
    });
  } catch (const JobFailure&) {
    if (!model_->denoiser || !stoppable_) unload(hooks);  // failed half-way: nothing half-made stays loaded
    throw;
  }
  plan_.placement.loras = options;
  plan_.loras_low = low;
  JobResult r;
  r.info = describe_model(plan_, model_->backend->name());
  r.info["lora_notes"] = notes;
  if (hooks.model_changed) hooks.model_changed(&plan_, r.info);
  return r;
}

Tensor RankExecutor::sample_planned(const SampleJob& job, const JobHooks& hooks) {
  SampleHooks steps;
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
  const int64_t dp = model_->groups.layout.dp;
  if (hooks.progress) hooks.progress(0, static_cast<int>((job.batch + dp - 1) / dp) * job.steps());
  BlockCancel blocks(channel_, *forward_group_, hooks.cancelled);
  std::vector<StoppableDenoiser*> experts = {stoppable_};
  if (stoppable_low_) experts.push_back(stoppable_low_);
  for (StoppableDenoiser* s : experts) {
    s->reset();
    s->inner().set_block_hook([&](int) { blocks.after_block(); });
  }
  auto unhook = [&] {
    for (StoppableDenoiser* s : experts) s->inner().set_block_hook({});
  };
  Tensor latent;
  try {
    phase(500, [&] { latent = run_sample_job(*model_, job, steps); });
  } catch (...) {
    unhook();
    channel_.settle_cancel_notices();  // collective: every rank gets here with the same verdict
    throw;
  }
  unhook();
  // A forward stopped in the last step leaves a finished but meaningless result.
  if (channel_.settle_cancel_notices()) throw JobCancelled{};
  return latent;
}

JobResult RankExecutor::sample(const Command& cmd, const JobHooks& hooks) {
  if (!model_) throw JobFailure{409, "no model is loaded; load one first (POST /v1/models/load)"};
  const DenoiserSpec& spec = *model_->spec;
  SampleJob job;
  phase(400, [&] {
    job = plan_sample(parse_sample_body(cmd.blob), spec);
    check_layout(job, model_->groups.layout);
  });
  const auto t0 = std::chrono::steady_clock::now();
  Tensor latent = sample_planned(job, hooks);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  JobResult r;
  if (Runtime::world_rank() != 0) return r;
  r.info = describe_job(job);
  r.info["seconds"] = secs;
  r.info["model"] = spec.variant();
  r.body = encode_safetensors({{"latent", latent}},
                              {{"raylight.model", spec.variant()}, {"raylight.request", r.info.dump()}});
  r.content_type = "application/octet-stream";
  return r;
}

JobResult RankExecutor::generate(const Command& cmd, const JobHooks& hooks) {
  if (!model_) throw JobFailure{409, "no model is loaded; load one first (POST /v1/models/load)"};
  const bool lead = Runtime::world_rank() == 0;
  const DenoiserSpec& spec = *model_->spec;
  GenerateRequest req;
  phase(400, [&] {
    // The pictures (image-to-video) came as a safetensors body beside the JSON.
    std::vector<Tensor> images;
    if (!cmd.blob.empty()) images = generate_images(decode_safetensors(cmd.blob));
    req = parse_generate_request(nlohmann::json::parse(cmd.json), spec, images.size());
    req.images = std::move(images);
  });
  // Rank 0 encodes the prompts; the conditioning travels to the other ranks as a sample
  // request body, which every rank then checks as /v1/sample does.
  std::string body;
  phase(500, [&] {
    if (!lead) return;
    Generator& parts = generate_models_.parts(req, spec, model_->source, *model_->backend);
    std::vector<std::pair<std::string, Tensor>> t;
    for (const auto& [name, tensor] : parts.encode(req.prompt)) t.emplace_back(name, tensor);
    // Reference latents travel as the shared inputs they are.
    if (!req.reference_images.empty()) {
      LatentCodec& codec = generate_models_.codec(req.parts, spec, model_->source, *model_->backend).codec();
      for (const auto& [name, tensor] : encode_references(spec, codec, req.reference_images, req.resize_images))
        t.emplace_back(name, tensor);
    }
    const double cfg = req.sample_params.value("cfg", spec.defaults().cfg);
    const auto given = [&](const char* k) {
      const bool has = req.sample_params.contains(k) && !req.sample_params[k].is_null();
      return has ? std::optional<double>(req.sample_params[k].get<double>()) : std::nullopt;
    };
    if (cfg != 1.0 || low_noise_cfg(spec, given("cfg"), given("cfg_low")).value_or(1.0) != 1.0)
      for (const auto& [name, tensor] : parts.encode(req.negative_prompt)) t.emplace_back(negative_name(name), tensor);
    // The pictures' conditioning (y, clip_fea) is shared by both prompts.
    if (!req.images.empty())
      for (const auto& [name, tensor] : generate_models_.pictures(req.parts, spec, model_->source, *model_->backend)
                                            .condition_on_images(req.images, req.item_shape))
        t.emplace_back(name, tensor);
    body = encode_safetensors(t, {{"request", req.sample_params.dump()}});
  });
  uint64_t bytes = body.size();
  control_.broadcast(&bytes, sizeof bytes, 0);
  body.resize(bytes);
  control_.broadcast(body.data(), bytes, 0);
  SampleJob job;
  phase(400, [&] {
    job = plan_sample(parse_sample_body(body), spec);
    check_layout(job, model_->groups.layout);
    if (job.batch != 1) fail("generate makes one video at a time");
  });
  const auto t0 = std::chrono::steady_clock::now();
  Tensor latent = sample_planned(job, hooks);
  JobResult r;
  // The decode's tiles over every rank, each with its copy of the VAE (as `raylight
  // generate` on several ranks), rank 0 blending them; bit for bit one rank's tiled decode.
  const bool spread = req.format != "latent" && control_.size() > 1;
  phase(500, [&] {
    Tensor pixels;
    if (req.format != "latent" && (lead || spread)) {
      Generator& codec = generate_models_.codec(req.parts, spec, model_->source, *model_->backend);
      VaeTileRequest tiles;
      tiles.ranks = spread ? control_.size() : 1;
      tiles.gpu_memory_limit = static_cast<double>(plan_.placement.gpu_memory_limit);
      tiles.held_bytes = static_cast<double>(model_->weights->held_bytes());
      pixels = codec.decode(latent, job.item_shape, tiles, *model_->groups.world);
    }
    if (lead) r.body = generate_models_.render(req, latent, pixels, &r.content_type);
  });
  if (!lead) return JobResult{};
  r.info = describe_job(job);
  r.info["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.info["format"] = req.format;
  r.info["bytes"] = r.body.size();
  return r;
}

namespace {

// Items [1, ...] each -> one tensor [B, ...] (or the one item when the request had no batch).
Tensor stack_items(const std::vector<Tensor>& items, bool batched) {
  if (!batched) return items.at(0);
  Shape shape = items.at(0).shape();
  shape.insert(shape.begin(), static_cast<int64_t>(items.size()));
  Tensor out = Tensor::empty(shape);
  char* dst = static_cast<char*>(out.raw());
  for (const Tensor& t : items) {
    const Tensor f = t.to_f32();
    if (f.shape() != items[0].shape()) fail("internal error: items of different shapes");
    std::memcpy(dst, f.raw(), f.nbytes());
    dst += f.nbytes();
  }
  return out;
}

Tensor item_at(const Tensor& items, int64_t i) {
  return items.slice_rows(i, i + 1).reshape(Shape(items.shape().begin() + 1, items.shape().end()));
}

JobResult tensor_result(const char* name, const Tensor& t, const std::string& model, nlohmann::json info) {
  JobResult r;
  info["model"] = model;
  info["shape"] = t.shape();
  r.body = encode_safetensors({{name, t}}, {{"raylight.model", model}, {"raylight.request", info.dump()}});
  r.content_type = "application/octet-stream";
  r.info = std::move(info);
  return r;
}

}  // namespace

JobResult RankExecutor::text_encode(const Command& cmd) {
  if (!model_) throw JobFailure{409, "no model is loaded; load one first (POST /v1/models/load)"};
  const bool lead = Runtime::world_rank() == 0;
  const DenoiserSpec& spec = *model_->spec;
  TextEncodeRequest req;
  phase(400, [&] { req = parse_text_encode_request(nlohmann::json::parse(cmd.json), spec); });
  // Rank 0 alone holds the text encoders (the other ranks never load them).
  JobResult r;
  const auto t0 = std::chrono::steady_clock::now();
  phase(500, [&] {
    if (!lead) return;
    Generator& parts = generate_models_.text(req.parts, spec, model_->source, *model_->backend);
    std::vector<std::pair<std::string, Tensor>> t;
    nlohmann::json names = nlohmann::json::array();
    for (const auto& [name, tensor] : parts.encode(req.prompt)) {
      t.emplace_back(name, tensor.to_f32());
      names.push_back(name);
    }
    nlohmann::json info = {{"model", spec.variant()}, {"tensors", names}};
    info["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.body = encode_safetensors(t, {{"raylight.model", spec.variant()}, {"raylight.request", info.dump()}});
    r.content_type = "application/octet-stream";
    r.info = info;
  });
  return lead ? r : JobResult{};
}

JobResult RankExecutor::vae_decode(const Command& cmd) {
  if (!model_) throw JobFailure{409, "no model is loaded; load one first (POST /v1/models/load)"};
  const bool lead = Runtime::world_rank() == 0;
  const DenoiserSpec& spec = *model_->spec;
  CodecRequest req;
  phase(400, [&] { req = parse_vae_decode_body(cmd.blob, spec); });
  // Spread: every rank holds the codec and decodes its share of the tiles, bit for bit the
  // single-rank tiled decode (tiled_decode.h); otherwise rank 0 decodes alone.
  const bool spread = req.spread && control_.size() > 1;
  req.tiles.ranks = spread ? control_.size() : 1;
  req.tiles.gpu_memory_limit = static_cast<double>(plan_.placement.gpu_memory_limit);
  req.tiles.held_bytes = static_cast<double>(model_->weights->held_bytes());
  Generator* parts = nullptr;
  phase(500, [&] {
    if (lead || spread) parts = &generate_models_.codec(req.parts, spec, model_->source, *model_->backend);
  });
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Tensor> pixels;
  const Shape item(req.items.shape().begin() + 1, req.items.shape().end());
  phase(500, [&] {
    for (int64_t i = 0; i < req.items.dim(0); ++i) {
      if (!lead && !spread) break;
      Tensor px = parts->decode(item_at(req.items, i), item, req.tiles, *model_->groups.world);
      if (lead) pixels.push_back(px);
    }
  });
  if (!lead) return JobResult{};
  nlohmann::json info = {{"ranks", req.tiles.ranks}};
  info["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return tensor_result("pixels", stack_items(pixels, req.batched), spec.variant(), info);
}

JobResult RankExecutor::vae_encode(const Command& cmd) {
  if (!model_) throw JobFailure{409, "no model is loaded; load one first (POST /v1/models/load)"};
  const bool lead = Runtime::world_rank() == 0;
  const DenoiserSpec& spec = *model_->spec;
  CodecRequest req;
  phase(400, [&] { req = parse_vae_encode_body(cmd.blob, spec); });
  // Rank 0 encodes: the causal video encoder runs its chunks in order (each needs the last
  // one's caches) and its middle attention sees the whole frame, so neither frames nor
  // tiles split exactly; see docs/server.md.
  std::vector<Tensor> latents;
  const auto t0 = std::chrono::steady_clock::now();
  phase(500, [&] {
    if (!lead) return;
    Generator& parts = generate_models_.codec(req.parts, spec, model_->source, *model_->backend);
    for (int64_t i = 0; i < req.items.dim(0); ++i) latents.push_back(parts.codec().encode(item_at(req.items, i)));
  });
  if (!lead) return JobResult{};
  nlohmann::json info = {{"ranks", 1}};
  info["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return tensor_result("latent", stack_items(latents, req.batched), spec.variant(), info);
}

}  // namespace raylight::server
