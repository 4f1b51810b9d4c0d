// Sampling-request checks. Every message names the tensor or parameter at fault, because
// it goes back to a client (often a ComfyUI user) as the 400 answer's text. What a tensor
// must look like is the family's business (DenoiserSpec); this file knows only the names.
#include "server/sample_request.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/finite.h"
#include "sampling/schedule.h"

namespace raylight::server {
namespace {

const char* const kParamNames[] = {"sampler", "cfg", "seed", "sigmas", "steps", "shift",
                                   "denoise", "width", "height", "frames", "batch", "guidance", "cfg_low",
                                   "start_step", "end_step", "return_with_leftover_noise", "add_noise", "expert"};

bool has(const nlohmann::json& p, const char* name) { return p.contains(name) && !p[name].is_null(); }

double number(const nlohmann::json& p, const char* name, double fallback) {
  if (!has(p, name)) return fallback;
  const auto& v = p[name];
  if (!v.is_number() || !std::isfinite(v.get<double>())) fail("\"", name, "\" must be a finite number, got ", v.dump());
  return v.get<double>();
}

bool boolean(const nlohmann::json& p, const char* name, bool fallback) {
  if (!has(p, name)) return fallback;
  if (!p[name].is_boolean()) fail("\"", name, "\" must be true or false, got ", p[name].dump());
  return p[name].get<bool>();
}

int64_t integer(const nlohmann::json& p, const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  if (!has(p, name)) return fallback;
  const auto& v = p[name];
  if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
    fail("\"", name, "\" must be an integer from ", lo, " to ", hi, ", got ", v.dump());
  return v.get<int64_t>();
}

// fp32 copy of a request tensor: floats, finite (core/finite.h).
Tensor finite_f32(const std::string& name, const Tensor& t) { return raylight::finite_f32(t, "tensor '" + name + "'"); }

// One item or a batch of at most 64 -> [B, item...]; `batched` tells which was given.
Tensor latent_tensor(const std::string& name, const Tensor& t, const DenoiserSpec& spec, bool* batched) {
  const int rank = spec.latent_format().item_rank;
  Shape s = t.shape();
  *batched = static_cast<int>(s.size()) == rank + 1;
  if (!*batched) s.insert(s.begin(), 1);
  if (static_cast<int>(s.size()) != rank + 1 || s[0] < 1 || s[0] > 64)
    fail("tensor '", name, "' has shape ", shape_str(t.shape()), "; expected one latent of ", rank,
         " dimensions or a batch of at most 64");
  spec.check_latent(Shape(s.begin() + 1, s.end()), "tensor '" + name + "'");
  return t.reshape(s);
}

// The names a request may carry for this family: latent, noise, every input (and the
// negative name of per-prompt ones).
std::vector<std::string> known_tensors(const DenoiserSpec& spec) {
  std::vector<std::string> names = {"latent", "noise"};
  for (const auto& in : spec.conditioning_inputs()) {
    names.push_back(in.name);
    if (in.per_prompt) names.push_back(negative_name(in.name));
  }
  return names;
}

}  // namespace

SampleInputs parse_sample_body(std::string_view body) {
  SampleInputs in;
  in.tensors = decode_safetensors(body);
  for (const auto& [name, t] : in.tensors.tensors) {
    if (!dtype_is_float(t.dtype())) fail("tensor '", name, "' has dtype ", dtype_name(t.dtype()), "; send a float type");
    if (t.numel() == 0) fail("tensor '", name, "' is empty");
  }
  for (const auto& [k, v] : in.tensors.metadata) {
    (void)v;
    if (k != "request") fail("unknown metadata key '", k, "' (the parameters go under \"request\")");
  }
  auto it = in.tensors.metadata.find("request");
  if (it != in.tensors.metadata.end()) {
    try {
      in.params = nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::exception& e) {
      fail("metadata \"request\" is not valid JSON: ", e.what());
    }
    if (!in.params.is_object()) fail("metadata \"request\" must be a JSON object");
  }
  for (const auto& [k, v] : in.params.items()) {
    (void)v;
    if (std::find(std::begin(kParamNames), std::end(kParamNames), k) == std::end(kParamNames))
      fail("unknown parameter \"", k, "\" (known: sampler, cfg, seed, sigmas, steps, shift, denoise, "
           "width, height, frames, batch, guidance, cfg_low, start_step, end_step, return_with_leftover_noise, "
           "add_noise, expert)");
  }
  return in;
}

SampleJob plan_sample(const SampleInputs& in, const DenoiserSpec& spec) {
  const nlohmann::json& p = in.params;
  const TensorBundle& b = in.tensors;
  const SamplingDefaults d = spec.defaults();
  const std::vector<std::string> known = known_tensors(spec);
  for (const auto& [name, t] : b.tensors) {
    (void)t;
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      fail("unknown tensor '", name, "' for ", spec.variant(), " (known: ", list, ")");
    }
  }
  SampleJob job;
  const std::string sampler = has(p, "sampler") && p["sampler"].is_string() ? p["sampler"].get<std::string>()
                              : has(p, "sampler") ? std::string("?") : sampler_name(d.sampler);
  if (!sampler_from_name(sampler, &job.sampler))
    fail("unknown sampler ", has(p, "sampler") ? p["sampler"].dump() : sampler, "; choose euler, unipc or dpmpp2m");
  job.cfg = number(p, "cfg", d.cfg);
  // A two-expert model: "cfg_low" for the low-noise expert, else "cfg" for both, else the pair's.
  job.cfg_low = low_noise_cfg(spec, has(p, "cfg") ? std::optional<double>(job.cfg) : std::nullopt,
                              has(p, "cfg_low") ? std::optional<double>(number(p, "cfg_low", 0)) : std::nullopt);
  if (has(p, "seed")) {
    const auto& s = p["seed"];
    if (s.is_number_unsigned()) job.seed = s.get<uint64_t>();
    else if (s.is_number_integer() && s.get<int64_t>() >= 0) job.seed = static_cast<uint64_t>(s.get<int64_t>());
    else fail("\"seed\" must be a non-negative integer, got ", s.dump());
  }

  // The latent's shape: from latent / noise, else from width, height, frames, batch.
  bool batched = false;
  const Tensor* lat = b.find("latent");
  const Tensor* noi = b.find("noise");
  if (lat || noi) {
    for (const char* k : {"width", "height", "frames", "batch"})
      if (has(p, k)) fail("\"", k, "\" cannot be given with a latent or noise tensor: the tensor's shape decides");
    if (lat) job.latent = latent_tensor("latent", finite_f32("latent", *lat), spec, &batched);
    if (noi) {
      bool nb = false;
      job.noise = latent_tensor("noise", finite_f32("noise", *noi), spec, &nb);
      if (lat && job.noise.shape() != job.latent.shape())
        fail("tensor 'noise' has shape ", shape_str(noi->shape()), " but 'latent' has ", shape_str(lat->shape()));
      batched = batched || nb;
    }
    const Tensor& x = lat ? job.latent : job.noise;
    job.batch = x.dim(0);
    job.item_shape = Shape(x.shape().begin() + 1, x.shape().end());
  } else {
    OutputSize size;
    size.width = integer(p, "width", d.width, 16, 8192);
    size.height = integer(p, "height", d.height, 16, 8192);
    size.frames = integer(p, "frames", d.frames, 1, 4097);
    job.item_shape = spec.latent_shape(size);
    job.batch = integer(p, "batch", 1, 1, 64);
    batched = has(p, "batch");
  }
  job.batched_output = batched;

  // Conditioning: each prompt's tensors plus the shared ones.
  Conditioning shared, positive, negative;
  for (const auto& input : spec.conditioning_inputs()) {
    if (const Tensor* t = b.find(input.name)) (input.per_prompt ? positive : shared)[input.name] = *t;
    if (input.per_prompt)
      if (const Tensor* t = b.find(negative_name(input.name))) negative[input.name] = *t;
  }
  if (positive.empty()) positive = spec.builtin_conditioning(0);
  if (positive.empty())
    for (const auto& input : spec.conditioning_inputs())
      if (input.per_prompt && input.required) fail("tensor '", input.name, "' (the positive prompt's ", input.shape, ") is required");
  for (const auto& [name, t] : shared) positive.emplace(name, t);
  const std::optional<double> guidance = has(p, "guidance") ? std::optional<double>(number(p, "guidance", 0)) : std::nullopt;
  job.positive = spec.check_conditioning(with_guidance(spec, positive, guidance), job.item_shape);
  if (job.cfg != 1.0 || job.cfg_low.value_or(1.0) != 1.0) {
    if (negative.empty()) negative = spec.builtin_conditioning(1);
    if (negative.empty())
      for (const auto& input : spec.conditioning_inputs())
        if (input.per_prompt && input.required)
          fail("tensor '", negative_name(input.name), "' is required when cfg is not 1 (cfg ", job.cfg, ")");
    for (const auto& [name, t] : shared) negative.emplace(name, t);
    try {
      job.negative = spec.check_conditioning(with_guidance(spec, negative, guidance), job.item_shape);
    } catch (const Error& e) {
      // The family names the input ('context'); the request called it 'negative'.
      std::string msg = e.what();
      for (const auto& input : spec.conditioning_inputs())
        if (input.per_prompt)
          for (size_t at; (at = msg.find("'" + input.name + "'")) != std::string::npos;)
            msg.replace(at, input.name.size() + 2, "'" + negative_name(input.name) + "'");
      fail(msg);
    }
  }

  // Noise levels.
  if (has(p, "sigmas")) {
    for (const char* k : {"steps", "shift", "denoise"})
      if (has(p, k)) fail("\"", k, "\" cannot be given with \"sigmas\"");
    const auto& s = p["sigmas"];
    if (!s.is_array() || s.size() < 2 || s.size() > 10001)
      fail("\"sigmas\" must be a list of 2 to 10001 numbers");
    for (const auto& v : s) {
      if (!v.is_number()) fail("\"sigmas\" must hold numbers, got ", v.dump());
      double x = v.get<double>();
      if (!(x >= 0 && x <= 1)) fail("\"sigmas\" must lie in [0, 1], got ", v.dump());
      if (!job.sigmas.empty() && !(x < job.sigmas.back())) fail("\"sigmas\" must be strictly decreasing");
      job.sigmas.push_back(x);
    }
  } else {
    const int steps = static_cast<int>(integer(p, "steps", d.steps, 1, 10000));
    const double shift = number(p, "shift", spec.default_shift(job.item_shape));
    if (!(shift > 0)) fail("\"shift\" must be positive, got ", shift);
    const double denoise = number(p, "denoise", 1.0);
    if (!(denoise > 0 && denoise <= 1)) fail("\"denoise\" must be in (0, 1], got ", denoise);
    const double whole = denoise == 1.0 ? steps : std::floor(steps / denoise);  // in double: no int wrap
    if (whole > 100000)
      fail("\"denoise\" ", denoise, " with ", steps, " steps makes a schedule of more than 100000 steps");
    const int total = static_cast<int>(whole);
    std::vector<double> all = flow_sigmas(total, shift);
    job.sigmas.assign(all.end() - (steps + 1), all.end());
  }
  // A part of the schedule, as ComfyUI's KSamplerAdvanced: its steps [start_step, end_step],
  // the last sigma kept (return_with_leftover_noise) or set to 0.
  if (has(p, "start_step") || has(p, "end_step") || has(p, "return_with_leftover_noise")) {
    const int steps = job.steps();
    const int start = static_cast<int>(integer(p, "start_step", 0, 0, 1000000));
    const int end = static_cast<int>(integer(p, "end_step", 1000000, 0, 1000000));
    std::vector<double> part = cut_schedule(job.sigmas, start, end, boolean(p, "return_with_leftover_noise", false));
    if (part.size() < 2)
      fail("\"start_step\" ", start, " with \"end_step\" ", end, " leaves no step of the ", steps,
           "-step schedule to sample (ComfyUI's KSamplerAdvanced returns the latent unchanged there)");
    job.sigmas = std::move(part);
  }
  // Without added noise the latent is the sample at the first sigma (a part continued from an
  // earlier part's leftover noise).
  job.add_noise = boolean(p, "add_noise", true);
  if (!job.add_noise) {
    if (!lat) fail("\"add_noise\": false continues from a 'latent' tensor, and none was given");
    if (noi) fail("\"add_noise\": false adds no noise, but a 'noise' tensor was given");
  }
  if (has(p, "expert")) {
    const auto& e = p["expert"];
    if (!spec.expert()) fail("\"expert\" is for a two-expert model; ", spec.variant(), " is one model");
    if (e == "high") job.expert = ExpertChoice::High;
    else if (e == "low") job.expert = ExpertChoice::Low;
    else fail("\"expert\" must be \"high\" or \"low\" (absent: switch at the pair's boundary), got ", e.dump());
  }
  if (job.add_noise && job.sigmas.front() < 1.0 && !job.latent.defined())
    fail("the schedule starts below sigma 1 (denoise < 1): a 'latent' tensor to start from is required");
  return job;
}

void check_layout(const SampleJob& job, const ParallelLayout& layout) {
  if (layout.cfg == 2 && job.cfg == 1.0 && job.cfg_low.value_or(1.0) == 1.0)
    fail("the model is loaded with cfg_parallel, which needs guidance: cfg must not be 1 (reload without "
         "cfg_parallel to sample with cfg 1)");
}

nlohmann::json describe_job(const SampleJob& job) {
  nlohmann::json shape = job.batched_output ? nlohmann::json::array({job.batch}) : nlohmann::json::array();
  for (int64_t d : job.item_shape) shape.push_back(d);
  return {{"sampler", sampler_name(job.sampler)},
          {"steps", job.steps()},
          {"cfg", job.cfg},
          {"cfg_low", job.cfg_low ? nlohmann::json(*job.cfg_low) : nlohmann::json(nullptr)},
          {"first_sigma", job.sigmas.front()},
          {"seed", job.noise.defined() ? nlohmann::json(nullptr) : nlohmann::json(job.seed)},
          {"caller_noise", job.noise.defined()},
          {"add_noise", job.add_noise},
          {"expert", job.expert == ExpertChoice::High  ? nlohmann::json("high")
                     : job.expert == ExpertChoice::Low ? nlohmann::json("low")
                                                       : nlohmann::json(nullptr)},
          {"shape", shape}};
}

}  // namespace raylight::server
