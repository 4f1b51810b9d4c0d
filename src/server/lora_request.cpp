#include "server/lora_request.h"

#include <cmath>

#include "core/error.h"

namespace raylight::server {

LoraOptions parse_lora_fields(const nlohmann::json& j, const char* field) {
  const std::string list = field;
  LoraOptions o;
  auto flag = [&](const char* name) {
    auto it = j.find(name);
    if (it == j.end() || it->is_null()) return false;
    if (!it->is_boolean()) fail("\"", name, "\" must be true or false, got ", it->dump());
    return it->get<bool>();
  };
  o.merge_fp8 = flag("lora_merge");
  o.skip_unmatched = flag("lora_skip_unmatched");
  // The flags are shared by a pair's two lists: they need LoRAs in either.
  auto listed = [&](const char* name) {
    auto l = j.find(name);
    return l != j.end() && l->is_array() && !l->empty();
  };
  if ((o.merge_fp8 || o.skip_unmatched) && !listed("loras") && !listed("loras_low"))
    fail("\"lora_merge\" and \"lora_skip_unmatched\" apply to LoRAs; list them in \"loras\"");
  auto it = j.find(list);
  if (it == j.end() || it->is_null()) return o;
  if (!it->is_array()) fail("\"", list, "\" must be a list of {\"path\": FILE, \"strength\": S}, got ", it->dump());
  if (it->size() > 64) fail("\"", list, "\" lists ", it->size(), " files; at most 64 apply at once");
  for (const auto& e : *it) {
    if (!e.is_object()) fail("each entry of \"", list, "\" must be an object like {\"path\": \"x.safetensors\"}");
    for (const auto& [k, v] : e.items()) {
      (void)v;
      if (k != "path" && k != "strength")
        fail("unknown field \"", k, "\" in a \"", list, "\" entry (known: path, strength)");
    }
    auto p = e.find("path");
    if (p == e.end() || !p->is_string() || p->get<std::string>().empty())
      fail("each entry of \"", list, "\" needs a \"path\" naming a LoRA file");
    LoraRequest r{p->get<std::string>(), 1.0};
    if (auto s = e.find("strength"); s != e.end() && !s->is_null()) {
      if (!s->is_number() || !std::isfinite(s->get<double>()) || std::fabs(s->get<double>()) > 100)
        fail("\"strength\" of LoRA ", r.path, " must be a number in [-100, 100], got ", s->dump());
      r.strength = s->get<double>();
    }
    o.files.push_back(r);
  }
  return o;
}

std::vector<std::string> lora_paths(const LoraOptions& o) {
  std::vector<std::string> out;
  for (const auto& f : o.files) out.push_back(f.path);
  return out;
}

nlohmann::json describe_loras(const LoraOptions& o) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& f : o.files) out.push_back({{"path", f.path}, {"strength", f.strength}});
  return out;
}

}  // namespace raylight::server
