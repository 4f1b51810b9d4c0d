// --model-low / --variant-low: the low-noise expert of a two-expert model (e.g. Wan 2.2 A14B),
// for the commands that sample (`sample`, `generate`). Checked against the high-noise
// expert's header before either loads.
#pragma once

#include <set>
#include <string>

#include "models/family.h"
#include "options.h"
#include "pipeline/model_loader.h"

namespace raylight::cli {

extern const std::set<std::string> kExpertValued;
extern const char* const kExpertHelp;

struct LowExpertFile {
  std::string path, variant;  // path empty: a one-model family
  LoraOptions loras;          // --lora-low (with --lora-merge / --lora-skip-unmatched)
};

// Fails when a two-expert model lacks its partner, a one-model family is given one, or the
// file is not the partner of `spec` (the file `model_path`, which --model names). Without
// --model-low, the file beside it named as its partner (ExpertRole::low_name) is taken.
LowExpertFile check_low_expert(const Options& opt, const DenoiserSpec& spec, const std::string& model_path);
// Loads the partner onto `model` (every rank); nothing for a one-model family.
void load_low_expert(LoadedModel& model, const LowExpertFile& file);

}  // namespace raylight::cli
