// Which base weight every adapter of the requested LoRA files patches. The family says how
// LoRA key stems name its weights (DenoiserSpec::lora_stems, turned into `stems` by the
// pipeline): this file knows no family. A stem that names nothing is reported by name and
// refused unless the user asks to skip such keys; a file none of whose keys fit is refused
// as a LoRA for another model; a delta whose shape does not fit its weight is refused.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "parallel/lora/lora_file.h"
#include "parallel/weight_store.h"

namespace raylight {

// One --lora argument.
struct LoraRequest {
  std::string path;
  double strength = 1.0;
};
// "FILE[:STRENGTH]": the strength after the last ':' when it parses as a finite number
// (so a path with ':' in it still works without one).
LoraRequest parse_lora_argument(const std::string& arg);

struct LoraOptions {
  std::vector<LoraRequest> files;
  bool skip_unmatched = false;  // --lora-skip-unmatched
  bool merge_fp8 = false;       // --lora-merge: fp8 weights become merged bf16 copies
  bool empty() const { return files.empty(); }
};

struct WeightPatch {
  std::shared_ptr<const LoraAdapter> adapter;
  double strength = 1.0;
  std::string file;
};

struct LoraPlan {
  // Base weight name -> its patches, in the order the files were given.
  std::map<std::string, std::vector<WeightPatch>> patches;
  std::vector<std::string> skipped;  // "file: key" of unmatched keys skipped on request
};

// `stems`: every LoRA key stem the family accepts -> the base weight it names.
// `family`: the model's family name, for messages.
LoraPlan plan_loras(const LoraOptions& options, const std::map<std::string, std::string>& stems,
                    const WeightStore& base, const std::string& family);

}  // namespace raylight
