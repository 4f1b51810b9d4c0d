#include "models/family.h"

#include "sampling/schedule.h"

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

// The flow schedule with a constant shift (ComfyUI's ModelSamplingSD3); families whose shift
// depends on the resolution (Flux) override it.
std::vector<double> DenoiserSpec::sigmas(int steps, double shift, const Shape& /*item*/) const {
  return flow_sigmas(steps, shift);
}

}  // namespace raylight
