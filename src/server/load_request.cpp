// Load-request validation. Unknown fields are errors, not ignored, so a client's typo
// ("ulyses") fails loudly instead of silently loading another layout.
#include "server/load_request.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "io/checkpoint.h"
#include "models/wan/wan_tiny.h"
#include "parallel/checkpoint_weights.h"

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

WanConfig peek_config(const std::string& model) {
  if (model == "tiny") return wan_tiny_config();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(model, ec))
    fail("model file ", model, " does not exist or is not a file (\"tiny\" is the embedded model)");
  CheckpointWeights weights(Checkpoint::open(model));
  if (!looks_like_wan(weights))
    fail("model ", model, " is not a Wan 2.1 DiT checkpoint (no patch_embedding / blocks tensors)");
  return detect_wan_config(weights);
}

}  // namespace

LoadPlan plan_load(const nlohmann::json& j, int world) {
  if (!j.is_object()) fail("a load request is a JSON object like {\"model\": \"tiny\"}");
  static const char* known[] = {"model", "ulysses", "ring", "cfg_parallel", "dp", "fsdp", "offload",
                                "gpu_memory_limit_gib"};
  for (const auto& [k, v] : j.items()) {
    (void)v;
    if (std::find(std::begin(known), std::end(known), k) == std::end(known))
      fail("unknown field \"", k, "\" in the load request (known: model, ulysses, ring, cfg_parallel, dp, "
           "fsdp, offload, gpu_memory_limit_gib)");
  }
  auto m = j.find("model");
  if (m == j.end() || !m->is_string() || m->get<std::string>().empty())
    fail("\"model\" must name a checkpoint file or \"tiny\"");
  LoadPlan p;
  p.model = m->get<std::string>();
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
  p.placement.fsdp = flag(j, "fsdp");
  p.placement.offload = flag(j, "offload");
  p.placement.gpu_memory_limit = memory_limit(j, "gpu_memory_limit_gib");
  p.config = peek_config(p.model);
  p.layout = resolve_layout(p.layout, world, p.config.num_heads);
  validate_layout(p.layout, world, p.config.num_heads);
  return p;
}

nlohmann::json describe_model(const LoadPlan& p, const std::string& backend) {
  const WanConfig& c = p.config;
  return {{"model", p.model},
          {"variant", c.variant()},
          {"image_to_video", c.image_to_video()},
          {"heads", c.num_heads},
          {"text_dim", c.text_dim},
          {"text_len", c.text_len},
          {"latent_channels", c.out_dim},
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
          {"backend", backend}};
}

}  // namespace raylight::server
