// Test shortcuts: parts opened by path or embedded name through the registry, as the
// pipeline opens them, and the Wan DiT behind a loaded model's denoiser seam.
#pragma once

#include <memory>
#include <string>

#include "models/registry.h"
#include "models/t5/umt5_encoder.h"
#include "models/vae/wan_vae.h"
#include "models/wan/wan_model.h"
#include "pipeline/model_loader.h"

namespace raylight::test {

inline std::unique_ptr<UMT5Encoder> load_umt5(const std::string& source, Backend& backend,
                                              const std::string& tokenizer = "") {
  return UMT5Encoder::from_store(open_store(source, PartKind::TextEncoder), backend, source, tokenizer);
}

inline std::unique_ptr<WanVae> load_wan_vae(const std::string& source, Backend& backend) {
  return WanVae::from_weights(open_store(source, PartKind::LatentCodec), backend, source);
}

inline WanModel& wan_of(LoadedModel& m) { return dynamic_cast<WanModel&>(*m.denoiser); }

}  // namespace raylight::test
