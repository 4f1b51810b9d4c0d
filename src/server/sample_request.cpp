// Sampling-request checks. Every message names the tensor or parameter at fault, because
// it goes back to a client (often a ComfyUI user) as the 400 answer's text.
#include "server/sample_request.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "models/wan/wan_tiny.h"
#include "pipeline/sample_latents.h"
#include "sampling/schedule.h"

namespace raylight::server {
namespace {

const char* const kTensorNames[] = {"context", "negative", "latent", "noise", "y", "clip_fea"};
const char* const kParamNames[] = {"sampler", "cfg", "seed", "sigmas", "steps", "shift",
                                   "denoise", "width", "height", "frames", "batch"};

bool has(const nlohmann::json& p, const char* name) { return p.contains(name) && !p[name].is_null(); }

double number(const nlohmann::json& p, const char* name, double fallback) {
  if (!has(p, name)) return fallback;
  const auto& v = p[name];
  if (!v.is_number() || !std::isfinite(v.get<double>())) fail("\"", name, "\" must be a finite number, got ", v.dump());
  return v.get<double>();
}

int64_t integer(const nlohmann::json& p, const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  if (!has(p, name)) return fallback;
  const auto& v = p[name];
  if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
    fail("\"", name, "\" must be an integer from ", lo, " to ", hi, ", got ", v.dump());
  return v.get<int64_t>();
}

// fp32 copy of a request tensor, finite-checked.
Tensor finite_f32(const std::string& name, const Tensor& t) {
  Tensor f = t.to_f32();
  const float* p = f.f32();
  for (int64_t i = 0; i < f.numel(); ++i)
    if (!std::isfinite(p[i])) fail("tensor '", name, "' has a NaN or infinite value at element ", i);
  return f;
}

// [1, a, b] -> [a, b]; checks [tokens, dim] against the model.
Tensor tokens_tensor(const std::string& name, Tensor t, int64_t dim, int64_t max_tokens) {
  if (t.ndim() == 3 && t.dim(0) == 1) t = t.reshape({t.dim(1), t.dim(2)});
  if (t.ndim() != 2 || t.dim(1) != dim || t.dim(0) < 1 || t.dim(0) > max_tokens)
    fail("tensor '", name, "' has shape ", shape_str(t.shape()), "; expected [tokens, ", dim,
         "] (or [1, tokens, ", dim, "]) with 1 to ", max_tokens, " tokens");
  return t;
}

// [C, F, H, W] or [B, C, F, H, W] -> [B, C, F, H, W]; `batched` tells which.
Tensor latent_tensor(const std::string& name, const Tensor& t, const WanConfig& c, bool* batched) {
  Tensor x = t;
  *batched = x.ndim() == 5;
  if (x.ndim() == 4) x = x.reshape({1, x.dim(0), x.dim(1), x.dim(2), x.dim(3)});
  if (x.ndim() != 5 || x.dim(1) != c.out_dim || x.dim(0) < 1 || x.dim(0) > 64 || x.dim(2) < 1 ||
      x.dim(3) < c.patch.h || x.dim(4) < c.patch.w || x.dim(2) % c.patch.t || x.dim(3) % c.patch.h ||
      x.dim(4) % c.patch.w)
    fail("tensor '", name, "' has shape ", shape_str(t.shape()), "; expected [", c.out_dim,
         ", frames, height, width] or [batch <= 64, ", c.out_dim, ", frames, height, width] with "
         "height and width multiples of ", c.patch.h);
  return x;
}

}  // namespace

SampleInputs parse_sample_body(std::string_view body) {
  SampleInputs in;
  in.tensors = decode_safetensors(body);
  for (const auto& [name, t] : in.tensors.tensors) {
    if (std::find(std::begin(kTensorNames), std::end(kTensorNames), name) == std::end(kTensorNames))
      fail("unknown tensor '", name, "' (known: context, negative, latent, noise, y, clip_fea)");
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
           "width, height, frames, batch)");
  }
  return in;
}

SamplePlan plan_sample(const SampleInputs& in, const WanConfig& c, bool tiny) {
  const nlohmann::json& p = in.params;
  const TensorBundle& b = in.tensors;
  SamplePlan plan;
  const std::string sampler = has(p, "sampler") && p["sampler"].is_string() ? p["sampler"].get<std::string>()
                              : has(p, "sampler") ? std::string("?") : std::string("unipc");
  if (!sampler_from_name(sampler, &plan.sampler))
    fail("unknown sampler ", has(p, "sampler") ? p["sampler"].dump() : sampler, "; choose euler, unipc or dpmpp2m");
  plan.cfg = number(p, "cfg", 5.0);
  if (has(p, "seed")) {
    const auto& s = p["seed"];
    if (s.is_number_unsigned()) plan.seed = s.get<uint64_t>();
    else if (s.is_number_integer() && s.get<int64_t>() >= 0) plan.seed = static_cast<uint64_t>(s.get<int64_t>());
    else fail("\"seed\" must be a non-negative integer, got ", s.dump());
  }

  // Text (and image) conditioning.
  if (const Tensor* t = b.find("context")) plan.context = tokens_tensor("context", finite_f32("context", *t), c.text_dim, c.text_len);
  else if (tiny) plan.context = wan_tiny_context(0);
  else fail("tensor 'context' (the positive text embeddings) is required");
  if (plan.cfg != 1.0) {
    if (const Tensor* t = b.find("negative")) plan.negative = tokens_tensor("negative", finite_f32("negative", *t), c.text_dim, c.text_len);
    else if (tiny) plan.negative = wan_tiny_context(1);
    else fail("tensor 'negative' is required when cfg is not 1 (cfg ", plan.cfg, ")");
  }

  // The latent's shape: from latent / noise, else from width, height, frames, batch.
  bool batched = false;
  const Tensor* lat = b.find("latent");
  const Tensor* noi = b.find("noise");
  if (lat || noi) {
    for (const char* k : {"width", "height", "frames", "batch"})
      if (has(p, k)) fail("\"", k, "\" cannot be given with a latent or noise tensor: the tensor's shape decides");
    if (lat) plan.latent = latent_tensor("latent", finite_f32("latent", *lat), c, &batched);
    if (noi) {
      bool nb = false;
      plan.noise = latent_tensor("noise", finite_f32("noise", *noi), c, &nb);
      if (lat && plan.noise.shape() != plan.latent.shape())
        fail("tensor 'noise' has shape ", shape_str(noi->shape()), " but 'latent' has ", shape_str(lat->shape()));
      batched = batched || nb;
    }
    const Tensor& x = lat ? plan.latent : plan.noise;
    plan.batch = x.dim(0);
    plan.item_shape = {x.dim(1), x.dim(2), x.dim(3), x.dim(4)};
  } else {
    SampleOptions so;
    so.width = integer(p, "width", tiny ? 128 : 832, 16, 8192);
    so.height = integer(p, "height", tiny ? 128 : 480, 16, 8192);
    so.frames = integer(p, "frames", tiny ? 9 : 81, 1, 4097);
    plan.item_shape = wan_latent_shape(c, so);
    plan.batch = integer(p, "batch", 1, 1, 64);
    batched = has(p, "batch");
  }
  plan.batched_output = batched;

  if (c.image_to_video()) {
    const Tensor* y = b.find("y");
    const Tensor* f = b.find("clip_fea");
    if (!y || !f) fail("the loaded model is image-to-video: tensors 'y' and 'clip_fea' are required");
    Tensor yy = finite_f32("y", *y);
    if (yy.ndim() == 5 && yy.dim(0) == 1) yy = yy.reshape({yy.dim(1), yy.dim(2), yy.dim(3), yy.dim(4)});
    const Shape want = {c.in_dim - c.out_dim, plan.item_shape[1], plan.item_shape[2], plan.item_shape[3]};
    if (yy.shape() != want) fail("tensor 'y' has shape ", shape_str(y->shape()), "; expected ", shape_str(want));
    plan.y = yy;
    plan.clip_fea = tokens_tensor("clip_fea", finite_f32("clip_fea", *f), c.clip_dim, c.image_tokens);
  } else if (b.find("y") || b.find("clip_fea")) {
    fail("tensors 'y' and 'clip_fea' are for image-to-video models; the loaded model is text-to-video");
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
      if (!plan.sigmas.empty() && !(x < plan.sigmas.back())) fail("\"sigmas\" must be strictly decreasing");
      plan.sigmas.push_back(x);
    }
  } else {
    const int steps = static_cast<int>(integer(p, "steps", tiny ? 10 : 30, 1, 10000));
    const double shift = number(p, "shift", 5.0);
    if (!(shift > 0)) fail("\"shift\" must be positive, got ", shift);
    const double denoise = number(p, "denoise", 1.0);
    if (!(denoise > 0 && denoise <= 1)) fail("\"denoise\" must be in (0, 1], got ", denoise);
    const int total = denoise == 1.0 ? steps : static_cast<int>(steps / denoise);
    if (total > 100000) fail("\"denoise\" ", denoise, " with ", steps, " steps makes a schedule of ", total, " steps");
    std::vector<double> all = flow_sigmas(total, shift);
    plan.sigmas.assign(all.end() - (steps + 1), all.end());
  }
  if (plan.sigmas.front() < 1.0 && !plan.latent.defined())
    fail("the schedule starts below sigma 1 (denoise < 1): a 'latent' tensor to start from is required");
  return plan;
}

void check_layout(const SamplePlan& plan, const ParallelLayout& layout) {
  if (layout.cfg == 2 && plan.cfg == 1.0)
    fail("the model is loaded with cfg_parallel, which needs guidance: cfg must not be 1 (reload without "
         "cfg_parallel to sample with cfg 1)");
}

nlohmann::json SamplePlan::describe() const {
  nlohmann::json shape = batched_output ? nlohmann::json::array({batch}) : nlohmann::json::array();
  for (int64_t d : item_shape) shape.push_back(d);
  return {{"sampler", sampler_name(sampler)},
          {"steps", steps()},
          {"cfg", cfg},
          {"first_sigma", sigmas.front()},
          {"seed", noise.defined() ? nlohmann::json(nullptr) : nlohmann::json(seed)},
          {"caller_noise", noise.defined()},
          {"shape", shape}};
}

}  // namespace raylight::server
