#include "models/family.h"

#include "core/error.h"

namespace raylight {

const char* part_kind_name(PartKind kind) {
  switch (kind) {
    case PartKind::Denoiser: return "DiT";
    case PartKind::TextEncoder: return "text encoder";
    case PartKind::LatentCodec: return "VAE";
    case PartKind::ImageEncoder: return "image encoder";
  }
  return "part";
}

void TextEncoder::set_padding(int64_t tokens) {
  if (tokens != 0) fail("text encoder ", variant(), " cannot pad prompts to ", tokens, " tokens");
}

std::string negative_name(const std::string& input) { return input == "context" ? "negative" : "negative_" + input; }

std::vector<std::string> DenoiserSpec::lora_stems(const std::string& weight) const {
  const std::string suffix = ".weight";
  const bool is_weight = weight.size() > suffix.size() &&
                         weight.compare(weight.size() - suffix.size(), suffix.size(), suffix) == 0;
  if (!is_weight) return {weight, "diffusion_model." + weight};
  const std::string stem = weight.substr(0, weight.size() - suffix.size());
  std::string flat = stem;
  for (char& ch : flat)
    if (ch == '.') ch = '_';
  return {stem, "diffusion_model." + stem, "model.diffusion_model." + stem, "lora_unet_" + flat};
}

}  // namespace raylight
