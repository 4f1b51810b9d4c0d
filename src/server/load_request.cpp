// Load-request validation. Unknown fields are errors, not ignored, so a client's typo
// ("ulyses") fails loudly instead of silently loading another layout.
#include "server/load_request.h"

#include <algorithm>
#include <filesystem>

#include "backend/backend_select.h"
#include "core/error.h"
#include "models/registry.h"
#include "server/client_files.h"
#include "server/lora_request.h"

namespace raylight::server {
namespace {

int degree(const nlohmann::json& j, const char* name, int fallback) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > 4096)
    fail("\"", name, "\" must be an integer from 1 to 4096, got ", it->dump());
  return static_cast<int>(it->get<int64_t>());
}

bool flag(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return false;
  if (!it->is_boolean()) fail("\"", name, "\" must be true or false, got ", it->dump());
  return it->get<bool>();
}

// GiB as a positive number -> bytes; absent or null -> 0 (no cap).
size_t memory_limit(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return 0;
  if (!it->is_number() || !(it->get<double>() > 0) || it->get<double>() > 1e6)
    fail("\"", name, "\" must be a positive number of GiB, got ", it->dump());
  return static_cast<size_t>(it->get<double>() * 1073741824.0);
}

nlohmann::json latent_format_json(const LatentFormat& f) {
  nlohmann::json j = {{"comfyui", f.comfyui_name},
                      {"channels", f.channels},
                      {"item_dims", f.item_rank},
                      {"scale_factor", f.scale_factor},
                      {"shift_factor", f.shift_factor}};
  j["mean"] = f.mean.empty() ? nlohmann::json(nullptr) : nlohmann::json(f.mean);
  j["std"] = f.std.empty() ? nlohmann::json(nullptr) : nlohmann::json(f.std);
  return j;
}

}  // namespace

LoadPlan plan_load(const nlohmann::json& j, int world) {
  if (!j.is_object()) fail("a load request is a JSON object like {\"model\": \"tiny\"}");
  static const char* known[] = {"model", "variant", "ulysses", "ring", "cfg_parallel", "dp", "fsdp", "offload",
                                "gpu_memory_limit_gib", "loras", "lora_merge", "lora_skip_unmatched", "model_low",
                                "variant_low", "loras_low", "attention"};
  for (const auto& [k, v] : j.items()) {
    (void)v;
    if (std::find(std::begin(known), std::end(known), k) == std::end(known))
      fail("unknown field \"", k, "\" in the load request (known: model, variant, ulysses, ring, cfg_parallel, dp, "
           "fsdp, offload, gpu_memory_limit_gib, loras, lora_merge, lora_skip_unmatched, model_low, variant_low, "
           "loras_low, attention)");
  }
  auto m = j.find("model");
  if (m == j.end() || !m->is_string() || m->get<std::string>().empty())
    fail("\"model\" must name a checkpoint file or \"tiny\"");
  LoadPlan p;
  p.model = m->get<std::string>();
  if (auto v = j.find("variant"); v != j.end() && !v->is_null()) {
    if (!v->is_string()) fail("\"variant\" must be a string, got ", v->dump());
    p.variant = v->get<std::string>();
  }
  p.layout.cfg = flag(j, "cfg_parallel") ? 2 : 1;
  p.layout.dp = degree(j, "dp", 1);
  p.layout.ring = degree(j, "ring", 1);
  const bool given = j.contains("ulysses") && !j["ulysses"].is_null();
  if (!given && !(j.contains("ring") && !j["ring"].is_null())) {
    p.layout.auto_sequence = true;
  } else {
    const int rest = p.layout.cfg * p.layout.dp * p.layout.ring;
    p.layout.ulysses = degree(j, "ulysses", world % rest == 0 ? world / rest : 1);
  }
  if (auto a = j.find("attention"); a != j.end() && !a->is_null()) {
    if (!a->is_string() || !attention_name_known(a->get<std::string>()) || a->get<std::string>().empty())
      fail("\"attention\" must be \"cudnn\", \"own\" or \"fp8\", got ", a->dump());
    p.attention = a->get<std::string>();
  }
  p.placement.fsdp = flag(j, "fsdp");
  p.placement.offload = flag(j, "offload");
  p.placement.gpu_memory_limit = memory_limit(j, "gpu_memory_limit_gib");
  p.placement.loras = parse_lora_fields(j);
  p.loras_low = parse_lora_fields(j, "loras_low");
  p.spec = denoiser_spec(*open_client_store("model", p.model, PartKind::Denoiser), p.model, p.variant);
  for (const char* key : {"model_low", "variant_low"})
    if (auto v = j.find(key); v != j.end() && !v->is_null()) {
      if (!v->is_string() || v->get<std::string>().empty()) fail("\"", key, "\" must be a non-empty string");
      (std::string(key) == "model_low" ? p.model_low : p.variant_low) = v->get<std::string>();
    }
  if (!p.variant_low.empty() && p.model_low.empty()) fail("\"variant_low\" is given without \"model_low\"");
  if (!p.loras_low.empty() && p.model_low.empty())
    fail("\"loras_low\" is for the low-noise expert given as \"model_low\" (\"loras\" applies to \"model\")");
  if (!p.model_low.empty()) {
    const auto role = p.spec->expert();
    if (!role || !role->high_noise)
      fail("\"model_low\" is for the high-noise expert of a two-expert model; ", p.model, " is ", p.spec->variant());
    const auto low = denoiser_spec(*open_client_store("model_low", p.model_low, PartKind::Denoiser), p.model_low,
                                   p.variant_low);
    const auto low_role = low->expert();
    if (!low_role || low_role->high_noise || low_role->pair != role->pair)
      fail("\"model_low\" ", p.model_low, " (", low->variant(), ") is not the low-noise expert of ", role->pair);
  }
  p.layout = resolve_layout(p.layout, world, p.spec->attention_heads());
  validate_layout(p.layout, world, p.spec->attention_heads());
  return p;
}

nlohmann::json describe_model(const LoadPlan& p, const std::string& backend) {
  const DenoiserSpec& s = *p.spec;
  nlohmann::json inputs = nlohmann::json::array();
  for (const auto& in : s.conditioning_inputs())
    inputs.push_back({{"name", in.name},
                      {"per_prompt", in.per_prompt},
                      {"negative_name", in.per_prompt ? nlohmann::json(negative_name(in.name)) : nlohmann::json(nullptr)},
                      {"required", in.required},
                      {"width", in.width},
                      {"shape", in.shape}});
  const SamplingDefaults d = s.defaults();
  return {{"model", p.model},
          {"model_low", p.model_low.empty() ? nlohmann::json(nullptr) : nlohmann::json(p.model_low)},
          {"family", s.family()},
          {"variant", s.variant()},
          {"heads", s.attention_heads()},
          {"conditioning", inputs},
          {"latent_channels", s.latent_format().channels},
          {"latent_format", latent_format_json(s.latent_format())},
          {"defaults",
           {{"width", d.width}, {"height", d.height}, {"frames", d.frames}, {"steps", d.steps}, {"cfg", d.cfg},
            {"shift", d.shift}, {"guidance", d.guidance}, {"sampler", sampler_name(d.sampler)}, {"fps", d.fps}}},
          {"layout",
           {{"ulysses", p.layout.ulysses},
            {"ring", p.layout.ring},
            {"cfg_parallel", p.layout.cfg == 2},
            {"dp", p.layout.dp},
            {"describe", p.layout.describe()}}},
          {"fsdp", p.placement.fsdp},
          {"offload", p.placement.offload},
          {"gpu_memory_limit_gib", p.placement.gpu_memory_limit
                                       ? nlohmann::json(p.placement.gpu_memory_limit / 1073741824.0)
                                       : nlohmann::json(nullptr)},
          {"loras", describe_loras(p.placement.loras)},
          {"loras_low", describe_loras(p.loras_low)},
          {"attention", p.attention.empty() ? nlohmann::json(nullptr) : nlohmann::json(p.attention)},
          {"backend", backend}};
}

}  // namespace raylight::server
