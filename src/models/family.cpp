#include "models/family.h"


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

std::string negative_name(const std::string& input) { return input == "context" ? "negative" : "negative_" + input; }

}  // namespace raylight
