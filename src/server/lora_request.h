// The LoRA list of a request: "loras": [{"path": FILE, "strength": S}, ...] (strength 1
// when absent; [] means none), with "lora_merge" (fp8 weights get merged bf16 copies) and
// "lora_skip_unmatched" (apply the keys that match, list the others). The load request
// takes these fields; POST /v1/models/loras takes them alone and changes the LoRAs of the
// loaded model without loading it again. Unknown fields of an entry are errors. A two-expert
// model's low-noise expert has its own list, "loras_low" (the flags are shared).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "parallel/lora/lora_plan.h"

namespace raylight::server {

// The LoRA list `field` of `j` ("loras", or "loras_low") with the shared flags (absent:
// none); an Error names the field that is wrong.
LoraOptions parse_lora_fields(const nlohmann::json& j, const char* field = "loras");
// The files a request's LoRA fields name (for the client path checks).
std::vector<std::string> lora_paths(const LoraOptions& o);
// For model descriptions: [{"path", "strength"}, ...].
nlohmann::json describe_loras(const LoraOptions& o);

}  // namespace raylight::server
