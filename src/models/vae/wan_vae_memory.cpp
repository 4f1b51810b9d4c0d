#include "models/vae/wan_vae_memory.h"

#include <algorithm>

namespace raylight {
namespace {

constexpr double kBf16 = 2.0, kSlack = 1.15;
constexpr double kConvScratch = 2.0 * 256 * 1024 * 1024;  // im2col scratch + product band

}  // namespace

double wan_vae_region_decode_bytes(const WanVaeConfig& c, int64_t h, int64_t w) {
  double pixels = static_cast<double>(h) * static_cast<double>(w);  // at the current level
  double frames = 1;  // video frames per chunk at the current level (1 latent frame in)
  const double mid = static_cast<double>(wan_vae_middle_dim(c));
  double caches = 2 * (2 * mid * pixels);      // middle.2's two convs
  double live = frames * pixels * 4 * mid;     // middle.2 at work
  for (const auto& st : wan_vae_decoder_stages(c)) {
    const double in = static_cast<double>(st.in_dim), out = static_cast<double>(st.out_dim);
    if (st.kind == WanVaeStage::Kind::Residual) {
      caches += 2 * (in + out) * pixels;
      live = std::max(live, frames * pixels * (in + 3 * out));
    } else {
      if (st.temporal) {
        caches += 2 * in * pixels;  // time_conv
        live = std::max(live, frames * pixels * 3 * in);  // input and its 2C-channel conv output
        frames *= 2;
      }
      pixels *= 4;
      live = std::max(live, frames * pixels * (in + out) + frames * pixels / 4 * in);
    }
  }
  const double head_in = static_cast<double>(c.base_dim * c.dim_mult.front());
  caches += 2 * head_in * pixels;
  live = std::max(live, frames * pixels * (2 * head_in + 3));
  return kSlack * (kBf16 * (caches + live) + kConvScratch);
}

double wan_vae_shared_decode_bytes(const WanVaeConfig& c, int64_t h, int64_t w) {
  const double pixels = static_cast<double>(h) * static_cast<double>(w);
  const double mid = static_cast<double>(wan_vae_middle_dim(c)), z = static_cast<double>(c.z_dim);
  const double caches = 2 * z * pixels + 2 * (2 * mid * pixels);
  const double live = pixels * 5 * mid;  // input, normed, q k v
  const double scores = 4.0 * pixels * pixels;  // fp32 scores when attention runs as products
  return kSlack * (kBf16 * (caches + live) + scores + kConvScratch);
}

double wan_vae_weight_bytes(const WanVaeConfig& c) {
  double n = 0;
  for (const auto& [name, shape] : wan_vae_expected_tensors(c)) n += static_cast<double>(shape_numel(shape));
  return kBf16 * n;
}

}  // namespace raylight
