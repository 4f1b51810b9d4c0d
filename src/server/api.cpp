// Request routing and checking for the HTTP API. Submissions are checked with the same
// functions the ranks use (plan_load, parse_sample_body, plan_sample), against the model
// loaded now when no queued job will change it, so the answer to a bad request comes at
// once and the queue only ever holds jobs that can run.
#include "server/api.h"

#include <chrono>
#include <vector>

#include "core/error.h"
#include "server/client_files.h"
#include "server/lora_request.h"
#include "server/generate_job.h"
#include "server/job_estimate.h"
#include "server/load_request.h"
#include "server/part_jobs.h"
#include "server/sample_request.h"

namespace raylight::server {
namespace {

HttpResponse json_response(int status, const nlohmann::json& j) {
  HttpResponse r;
  r.status = status;
  r.body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  return r;
}

bool truthy(const std::optional<std::string>& v) {
  return v && (v->empty() || *v == "1" || *v == "true" || *v == "yes");
}

const char* const kEndpoints[] = {
    "GET /v1/health", "GET /v1/memory", "GET /v1/models", "POST /v1/models/load",
    "POST /v1/models/unload", "POST /v1/models/loras", "POST /v1/sample", "POST /v1/generate", "POST /v1/text/encode", "POST /v1/vae/decode", "POST /v1/vae/encode", "GET /v1/jobs",
    "GET /v1/jobs/{id}", "GET /v1/jobs/{id}/events", "GET /v1/jobs/{id}/result",
    "POST /v1/jobs/{id}/cancel", "DELETE /v1/jobs/{id}", "POST /v1/shutdown"};

}  // namespace

Api::Api(ApiConfig config, JobBoard& board, ServerState& state, std::function<void()> request_shutdown,
         std::function<bool()> stopping)
    : config_(std::move(config)), board_(board), state_(state),
      request_shutdown_(std::move(request_shutdown)), stopping_(std::move(stopping)) {}

std::optional<HttpResponse> Api::check_head(const HttpRequest& req, size_t content_length) const {
  return gate_request({config_.token, config_.loopback, config_.limits.max_json_bytes}, req, content_length);
}

HttpResponse Api::handle(HttpRequest& req) {
  // The HTTP server has run the same check on the head; it is repeated here so the API
  // holds its own rules whoever calls it. Past it, the endpoint exists and allows the method.
  if (auto refused = check_head(req, req.body.size())) return *refused;
  const std::vector<std::string> p = split_path(req.path);
  const std::string m = req.method == "HEAD" ? "GET" : req.method;
  auto is = [&](std::initializer_list<const char*> want) {
    if (p.size() != want.size()) return false;
    size_t i = 0;
    for (const char* w : want)
      if (p[i++] != w) return false;
    return true;
  };
  if (p.empty() || is({"v1"})) return json_response(200, {{"service", "raylight"}, {"endpoints", kEndpoints}});
  if (is({"v1", "health"})) return health();
  if (is({"v1", "memory"})) return json_response(200, state_.memory());
  if (is({"v1", "models"})) {
    auto model = state_.model();
    return json_response(200, {{"model", model ? model->info : nlohmann::json(nullptr)}});
  }
  if (is({"v1", "models", "load"})) return load(req);
  if (is({"v1", "models", "unload"})) return unload(req);
  if (is({"v1", "models", "loras"})) return loras(req);
  if (is({"v1", "sample"})) return sample(req);
  if (is({"v1", "generate"})) return generate(req);
  if (is({"v1", "text", "encode"})) return text_encode(req);
  if (is({"v1", "vae", "decode"})) return vae_job(req, true);
  if (is({"v1", "vae", "encode"})) return vae_job(req, false);
  if (is({"v1", "jobs"})) return json_response(200, {{"jobs", board_.list()}});
  if (is({"v1", "shutdown"})) {
    request_shutdown_();
    HttpResponse r = json_response(200, {{"status", "shutting down"}});
    r.close = true;
    return r;
  }
  return job(m, p[2], p.size() == 4 ? p[3] : "", req);
}

bool Api::unresponsive() const { return !board_.busy() && state_.heartbeat_wait_s() > config_.unresponsive_s; }

HttpResponse Api::health() const {
  auto model = state_.model();
  const bool silent = unresponsive();
  const char* status = stopping_() ? "stopping" : silent ? "unresponsive" : "ok";
  return json_response(silent ? 503 : 200, {{"status", status},
                                            {"service", "raylight"},
                                            {"ranks", state_.world_size()},
                                            {"ranks_answered_s", state_.since_answer_s()},
                                            {"busy", board_.busy()},
                                            {"queued", board_.queued()},
                                            {"model", model ? model->info : nlohmann::json(nullptr)}});
}

namespace {

// The JSON object of a request body ({} when empty); a 4xx response when it is not one.
std::optional<HttpResponse> read_json(const HttpRequest& req, const HttpLimits& limits, nlohmann::json* out) {
  if (req.body.size() > limits.max_json_bytes)
    return error_response(413, "JSON body of " + std::to_string(req.body.size()) + " bytes exceeds the limit of " +
                                   std::to_string(limits.max_json_bytes));
  if (req.body.empty()) {
    *out = nlohmann::json::object();
    return std::nullopt;
  }
  try {
    *out = nlohmann::json::parse(req.body);
  } catch (const nlohmann::json::exception& e) {
    return error_response(400, std::string("body is not valid JSON: ") + e.what());
  }
  if (!out->is_object()) return error_response(400, "body must be a JSON object");
  return std::nullopt;
}

// Checks the client-named files among `fields` of a request (client_files.h).
void check_paths(const nlohmann::json& j, std::initializer_list<const char*> fields,
                 const std::vector<std::string>& allowed_dirs) {
  for (const char* f : fields)
    if (auto it = j.find(f); it != j.end() && it->is_string()) check_client_path(f, it->get<std::string>(), allowed_dirs);
}

}  // namespace

HttpResponse Api::load(HttpRequest& req) {
  nlohmann::json j;
  if (auto bad = read_json(req, config_.limits, &j)) return *bad;
  try {
    if (j.is_object()) check_paths(j, {"model"}, config_.models_dirs);
    const LoadPlan plan = plan_load(j, state_.world_size());
    for (const auto& path : lora_paths(plan.placement.loras)) check_client_path("loras", path, config_.models_dirs);
    for (const auto& path : lora_paths(plan.loras_low)) check_client_path("loras_low", path, config_.models_dirs);
    if (config_.cpu_ranks && j.contains("gpu_memory_limit_gib") && !j["gpu_memory_limit_gib"].is_null())
      fail("\"gpu_memory_limit_gib\" caps GPU memory; this server's ranks run on the CPU backend, which has none");
  } catch (const Error& e) {
    return error_response(400, e.what());
  }
  return submit(JobKind::Load, std::move(j), {}, req);
}

HttpResponse Api::loras(HttpRequest& req) {
  nlohmann::json j;
  if (auto bad = read_json(req, config_.limits, &j)) return *bad;
  try {
    for (const auto& [k, v] : j.items()) {
      (void)v;
      if (k != "loras" && k != "lora_merge" && k != "lora_skip_unmatched" && k != "loras_low")
        fail("unknown field \"", k, "\" (known: loras, loras_low, lora_merge, lora_skip_unmatched)");
    }
    if (!j.contains("loras")) fail("\"loras\" is required: the list of LoRAs to apply ([] removes them all)");
    for (const auto& path : lora_paths(parse_lora_fields(j))) check_client_path("loras", path, config_.models_dirs);
    for (const auto& path : lora_paths(parse_lora_fields(j, "loras_low")))
      check_client_path("loras_low", path, config_.models_dirs);
  } catch (const Error& e) {
    return error_response(400, e.what());
  }
  if (!state_.model() && !board_.model_change_queued())
    return error_response(409, "no model is loaded; load one first (POST /v1/models/load)");
  return submit(JobKind::Loras, std::move(j), {}, req);
}

HttpResponse Api::unload(HttpRequest& req) {
  nlohmann::json j;
  if (auto bad = read_json(req, config_.limits, &j)) return *bad;
  if (!j.empty()) return error_response(400, "unload takes no parameters");
  return submit(JobKind::Unload, std::move(j), {}, req);
}

HttpResponse Api::sample(HttpRequest& req) {
  if (req.body.empty())
    return error_response(411, "POST /v1/sample needs a safetensors body (Content-Length); see docs/server.md");
  try {
    SampleInputs in = parse_sample_body(req.body);
    auto model = state_.model();
    if (!board_.model_change_queued()) {
      if (!model) return error_response(409, "no model is loaded; load one first (POST /v1/models/load)");
      const SampleJob job = plan_sample(in, *model->plan.spec);
      check_layout(job, model->plan.layout);
      check_job_memory(estimate_job_memory(job.item_shape, job.batch, *model->plan.spec, model->plan.layout,
                                           config_.cpu_ranks),
                       config_.job_memory_bytes);
    }
  } catch (const Error& e) {
    return error_response(400, e.what());
  }
  return submit(JobKind::Sample, nlohmann::json::object(), std::move(req.body), req);
}

HttpResponse Api::generate(HttpRequest& req) {
  nlohmann::json j;
  // With pictures (image-to-video) the body is safetensors: the pictures and the JSON as
  // its "request" metadata; the gate has checked the token and the size before it was read.
  const std::string* ct = req.header("content-type");
  const bool pictures = ct && ct->rfind("application/octet-stream", 0) == 0;
  size_t image_count = 0;
  if (!pictures) {
    if (auto bad = read_json(req, config_.limits, &j)) return *bad;
  }
  try {
    if (pictures) {
      const TensorBundle body = decode_safetensors(req.body);
      j = generate_body_json(body);
      image_count = generate_images(body).size();
    }
    check_paths(j, {"text_encoder", "text_encoder_2", "vae", "tokenizer", "clip_vision"}, config_.models_dirs);
    // Reference pictures are files the server reads too: the same folders bound them.
    if (auto it = j.find("images"); it != j.end() && it->is_array())
      for (const auto& v : *it)
        if (v.is_string()) check_client_path("images", v.get<std::string>(), config_.models_dirs);
  } catch (const Error& e) {
    return error_response(400, e.what());
  }
  if (!board_.model_change_queued()) {
    auto model = state_.model();
    if (!model) return error_response(409, "no model is loaded; load one first (POST /v1/models/load)");
    try {
      const GenerateRequest g = parse_generate_request(j, *model->plan.spec, image_count);
      check_job_memory(estimate_job_memory(g.item_shape, 1, *model->plan.spec, model->plan.layout, config_.cpu_ranks),
                       config_.job_memory_bytes);
      check_generate_parts(g);
    } catch (const Error& e) {
      return error_response(400, e.what());
    }
  }
  return submit(JobKind::Generate, std::move(j), pictures ? std::move(req.body) : std::string(), req);
}

HttpResponse Api::text_encode(HttpRequest& req) {
  nlohmann::json j;
  if (auto bad = read_json(req, config_.limits, &j)) return *bad;
  try {
    check_paths(j, {"text_encoder", "text_encoder_2", "tokenizer"}, config_.models_dirs);
  } catch (const Error& e) {
    return error_response(400, e.what());
  }
  if (!board_.model_change_queued()) {
    auto model = state_.model();
    if (!model) return error_response(409, "no model is loaded; load one first (POST /v1/models/load)");
    try {
      check_part_files(parse_text_encode_request(j, *model->plan.spec).parts);
    } catch (const Error& e) {
      return error_response(400, e.what());
    }
  }
  return submit(JobKind::TextEncode, std::move(j), {}, req);
}

HttpResponse Api::vae_job(HttpRequest& req, bool decode) {
  const char* path = decode ? "/v1/vae/decode" : "/v1/vae/encode";
  if (req.body.empty())
    return error_response(411, std::string("POST ") + path + " needs a safetensors body (Content-Length); see docs/server.md");
  try {
    // The VAE file is checked against --models-dir here, where the folders are known.
    const TensorBundle b = decode_safetensors(req.body);
    if (auto it = b.metadata.find("request"); it != b.metadata.end()) {
      const nlohmann::json j = nlohmann::json::parse(it->second, nullptr, false);
      if (j.is_object()) check_paths(j, {"vae"}, config_.models_dirs);
    }
    if (!board_.model_change_queued()) {
      auto model = state_.model();
      if (!model) return error_response(409, "no model is loaded; load one first (POST /v1/models/load)");
      const CodecRequest r = decode ? parse_vae_decode_body(req.body, *model->plan.spec)
                                    : parse_vae_encode_body(req.body, *model->plan.spec);
      check_part_files(r.parts);
    }
  } catch (const Error& e) {
    return error_response(400, e.what());
  }
  return submit(decode ? JobKind::VaeDecode : JobKind::VaeEncode, nlohmann::json::object(), std::move(req.body), req);
}

HttpResponse Api::submit(JobKind kind, nlohmann::json params, std::string payload, const HttpRequest& req) {
  // A job accepted now would only be cancelled, or wait on a rank that does not answer.
  if (stopping_()) return error_response(503, "the server is shutting down; it takes no new jobs");
  if (unresponsive())
    return error_response(503, "a rank has not answered for " + std::to_string(static_cast<int>(state_.heartbeat_wait_s())) +
                                   " s; the server takes no jobs until it does (or ends at the collective timeout)");
  std::string id;
  try {
    id = board_.submit(kind, std::move(params), std::move(payload));
  } catch (const Refused& r) {
    return error_response(r.status, r.message);
  }
  if (truthy(req.query_param("wait"))) return result(id, true);
  auto st = board_.status(id);
  HttpResponse r = json_response(202, st ? *st : nlohmann::json{{"id", id}});
  r.headers.emplace_back("Location", "/v1/jobs/" + id);
  return r;
}

HttpResponse Api::job(const std::string& method, const std::string& id, const std::string& what,
                      const HttpRequest& req) {
  if (!board_.known(id)) return error_response(404, "no job '" + id + "' (finished jobs are kept for a while)");
  if (what.empty()) return json_response(200, method == "DELETE" ? *board_.cancel(id) : *board_.status(id));
  if (what == "cancel") return json_response(200, *board_.cancel(id));
  if (what == "events") return events(id);
  return result(id, truthy(req.query_param("wait")));
}

HttpResponse Api::result(const std::string& id, bool wait) {
  // On shutdown the worker cancels or finishes every job before it exits, so a wait ends.
  uint64_t seen = ~0ull;
  for (;;) {
    if (auto o = board_.outcome(id)) {
      HttpResponse r;
      if (o->state == JobState::Succeeded) {
        r.body = o->result.body;
        r.content_type = o->result.content_type;
      } else {
        r = error_response(o->error_status ? o->error_status : 500, o->error);
      }
      r.headers.emplace_back("X-Raylight-Job", id);
      return r;
    }
    nlohmann::json st;
    if (!board_.wait_change(id, &seen, std::chrono::milliseconds(wait ? 500 : 0), &st))
      return error_response(410, "the job's result is no longer kept");
    const std::string state = st.value("state", "");
    if (!wait && (state == "queued" || state == "running"))
      return json_response(409, {{"error", "the job has not finished; GET /v1/jobs/" + id + "/events follows it"},
                                 {"job", st}});
  }
}

HttpResponse Api::events(const std::string& id) {
  HttpResponse r;
  r.content_type = "text/event-stream";
  JobBoard* board = &board_;
  r.stream = [board, id](StreamSink& sink) {
    uint64_t seen = ~0ull;
    auto last_write = std::chrono::steady_clock::now();
    if (!sink.write("retry: 1000\n\n")) return;
    for (;;) {
      nlohmann::json st;
      const uint64_t before = seen;
      if (!board->wait_change(id, &seen, std::chrono::milliseconds(1000), &st)) return;
      const auto now = std::chrono::steady_clock::now();
      if (seen != before) {
        if (!sink.write("event: status\ndata: " + st.dump() + "\n\n")) return;
        last_write = now;
        const std::string state = st.value("state", "");
        if (state != "queued" && state != "running") return;
      } else if (now - last_write > std::chrono::seconds(2)) {
        if (!sink.write(": keep-alive\n\n")) return;  // finds clients that went away
        last_write = now;
      }
    }
  };
  return r;
}

}  // namespace raylight::server
