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

// Where a LoRA key stem lands: a base weight, whole or a run of its rows (separate q/k/v
// LoRAs on a fused qkv weight, as ComfyUI's offset tuples (0, offset, size) narrow it).
// `swap_halves`: the delta's two row halves are exchanged first (ComfyUI's swap_scale_shift,
// diffusers' norm_out orders scale and shift the other way round).
struct LoraTarget {
  std::string weight;
  int64_t row_offset = 0;
  int64_t rows = 0;  // 0: every row
  bool swap_halves = false;
};

struct WeightPatch {
  std::shared_ptr<const LoraAdapter> adapter;
  double strength = 1.0;
  std::string file;
  // The rows of the weight it patches ([row_offset, row_offset + rows); rows 0: all).
  int64_t row_offset = 0;
  int64_t rows = 0;
  bool swap_halves = false;
};

struct LoraPlan {
  // Base weight name -> its patches, in the order the files were given.
  std::map<std::string, std::vector<WeightPatch>> patches;
  std::vector<std::string> skipped;  // "file: key" of unmatched keys skipped on request
};

// `stems`: every LoRA key stem the family accepts -> the base weight (or rows of it) it names.
// `family`: the model's family name, for messages.
LoraPlan plan_loras(const LoraOptions& options, const std::map<std::string, LoraTarget>& stems,
                    const WeightStore& base, const std::string& family);

}  // namespace raylight
