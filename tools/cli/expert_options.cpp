#include "expert_options.h"

#include <filesystem>

#include "core/error.h"
#include "models/registry.h"

namespace raylight::cli {

const std::set<std::string> kExpertValued = {"model-low", "variant-low", "cfg-low", "lora-low"};

const char* const kExpertHelp =
    "two-expert models (the high-noise expert as --model):\n"
    "  --model-low FILE      the low-noise expert, which samples once 1000*sigma < the\n"
    "                        pair's boundary; default: the file beside --model named as\n"
    "                        its partner (ComfyUI: low_noise where it says high_noise)\n"
    "  --variant-low NAME    its variant, where the file name cannot tell\n"
    "  --cfg-low G           its guidance (the pair's default; --cfg alone sets both)\n"
    "  --lora-low FILE[:S]   a LoRA for the low-noise expert (repeat for several); --lora\n"
    "                        applies to the high-noise one (--lora-merge and\n"
    "                        --lora-skip-unmatched apply to both)\n";

LowExpertFile check_low_expert(const Options& opt, const DenoiserSpec& spec, const std::string& model_path) {
  const auto role = spec.expert();
  LowExpertFile f;
  f.path = opt.str("model-low", "");
  f.variant = opt.str("variant-low", "");
  if (!role) {
    if (opt.has("model-low") || opt.has("variant-low") || opt.has("cfg-low") || opt.has("lora-low"))
      fail(spec.variant(), " is one model; --model-low, --variant-low, --cfg-low and --lora-low are for two-expert models");
    return f;
  }
  for (const auto& arg : opt.all("lora-low")) f.loras.files.push_back(parse_lora_argument(arg));
  f.loras.skip_unmatched = opt.flag("lora-skip-unmatched");
  f.loras.merge_fp8 = opt.flag("lora-merge");
  if (!role->high_noise)
    fail("--model names the low-noise expert of ", role->pair, " (", spec.variant(),
         "); give the high-noise one as --model and this one as --model-low");
  if (f.path.empty() && !role->high_name.empty()) {
    const size_t at = model_path.rfind(role->high_name);
    const size_t slash = model_path.find_last_of('/');
    if (at != std::string::npos && (slash == std::string::npos || at > slash)) {
      const std::string partner =
          model_path.substr(0, at) + role->low_name + model_path.substr(at + role->high_name.size());
      if (std::filesystem::is_regular_file(partner)) f.path = partner;
    }
  }
  if (f.path.empty())
    fail(spec.variant(), " is the high-noise expert of ", role->pair,
         ", which samples with two models: give the low-noise one with --model-low FILE");
  const auto low = denoiser_spec(*open_store(f.path, PartKind::Denoiser), f.path, f.variant);
  const auto low_role = low->expert();
  if (!low_role || low_role->high_noise || low_role->pair != role->pair)
    fail("--model-low ", f.path, " (", low->variant(), ") is not the low-noise expert of ", role->pair,
         low_role && low_role->high_noise ? " (it reads as the high-noise one: --variant-low decides)" : "");
  return f;
}

void load_low_expert(LoadedModel& model, const LowExpertFile& file) {
  if (!file.path.empty()) add_low_noise_expert(model, file.path, file.variant, file.loras);
}

}  // namespace raylight::cli
