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

}  // namespace raylight
