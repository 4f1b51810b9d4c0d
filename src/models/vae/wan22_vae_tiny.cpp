#include "models/vae/wan22_vae_tiny.h"

#include "models/vae/wan_vae_tiny.h"

namespace raylight {

Wan22VaeConfig wan22_vae_tiny_config() {
  Wan22VaeConfig c;
  c.enc_dim = 4;
  c.dec_dim = 4;
  return c;
}

std::unique_ptr<MemoryWeights> wan22_vae_tiny_weights() {
  return wan_style_vae_tiny_weights(wan22_vae_expected_tensors(wan22_vae_tiny_config()), "wan2.2-vae-tiny");
}

}  // namespace raylight
