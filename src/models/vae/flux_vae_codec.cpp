// FluxVaeCodec: argument checks and the host-side edges (scale and shift, clamping); all
// compute is in flux_vae_net. Encoding gives the latent distribution's mean (mu), as
// ComfyUI and diffusers' latent_dist.mode() do, not a sample: the same picture always gives
// the same latent.
#include "models/vae/flux_vae_codec.h"

#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "core/finite.h"
#include "models/vae/flux_vae_config.h"
#include "models/vae/flux_vae_diffusers.h"
#include "models/vae/flux_vae_net.h"

namespace raylight {
namespace {

std::string describe(const FluxVaeConfig& c) {
  std::ostringstream os;
  os << "Flux VAE (base width " << c.ch << ", " << c.z_channels << " latent channels"
     << (c.has_encoder ? "" : ", decoder only") << ")";
  return os.str();
}

class FluxVaeCodec final : public LatentCodec {
 public:
  FluxVaeCodec(FluxVaeConfig c, std::unique_ptr<WeightStore> w, Backend& ops)
      : c_(std::move(c)), w_(std::move(w)), ops_(ops) {}
  std::string variant() const override { return describe(c_); }
  int64_t latent_channels() const override { return c_.z_channels; }
  int item_rank() const override { return 3; }

  // latent [z, h, w] -> picture [3, 8h, 8w] in [-1, 1] (clamped).
  Tensor decode(const Tensor& given, const Progress& progress) override {
    Tensor z = finite_f32(given, "VAE decode: the latent");
    const int64_t zc = c_.z_channels;
    if (z.ndim() == 4 && z.dim(1) == 1) z = z.reshape({z.dim(0), z.dim(2), z.dim(3)});  // [C, 1, h, w]
    if (z.ndim() != 3 || z.dim(0) != zc || z.dim(1) < 1 || z.dim(2) < 1)
      fail("VAE decode: latent has shape ", shape_str(given.shape()), ", expected [", zc,
           ", height, width] (", zc, " latent channels first)");
    Tensor raw = Tensor::empty({1, zc, z.dim(1), z.dim(2)});
    const float* s = z.f32();
    float* d = raw.f32();
    for (int64_t i = 0; i < z.numel(); ++i) d[i] = static_cast<float>(s[i] / kFluxVaeScale + kFluxVaeShift);
    Tensor y = ops_.download(flux_vae_decoder(ops_, *w_, c_, ops_.upload(raw)));
    Tensor out = y.reshape({3, y.dim(2), y.dim(3)}).to_f32().clone();
    float* p = out.f32();
    for (int64_t i = 0; i < out.numel(); ++i) p[i] = std::clamp(p[i], -1.0f, 1.0f);
    if (progress) progress(1, 1);
    return out;
  }

  // picture [3, H, W] in [-1, 1], H and W multiples of the downscale -> latent [z, H/8, W/8].
  Tensor encode(const Tensor& given, const Progress& progress) override {
    if (!c_.has_encoder) fail("VAE encode: these VAE weights have no encoder (no encoder.conv_in.weight)");
    Tensor x = finite_f32(given, "VAE encode: the picture");
    const int64_t f = c_.downscale();
    if (x.ndim() == 4 && x.dim(1) == 1) x = x.reshape({x.dim(0), x.dim(2), x.dim(3)});  // [3, 1, H, W]
    if (x.ndim() != 3 || x.dim(0) != 3 || x.dim(1) < f || x.dim(1) % f || x.dim(2) < f || x.dim(2) % f)
      fail("VAE encode: picture has shape ", shape_str(given.shape()), ", expected [3, height, width] with height and "
           "width multiples of ", f);
    Tensor y = ops_.download(flux_vae_encoder(ops_, *w_, c_, ops_.upload(x.reshape({1, 3, x.dim(1), x.dim(2)}))));
    const int64_t zc = c_.z_channels, h = y.dim(2), w = y.dim(3);
    if (y.ndim() != 4 || y.dim(1) != 2 * zc || h != x.dim(1) / f || w != x.dim(2) / f)
      fail("VAE encode: internal error, encoder output ", shape_str(y.shape()));
    Tensor out = Tensor::empty({zc, h, w});
    const Tensor yf = y.to_f32();
    const float* s = yf.f32();  // channels [0, z) are mu, the rest the unused log-variance
    float* d = out.f32();
    for (int64_t i = 0; i < out.numel(); ++i) d[i] = static_cast<float>((s[i] - kFluxVaeShift) * kFluxVaeScale);
    if (progress) progress(1, 1);
    return out;
  }

 private:
  FluxVaeConfig c_;
  std::unique_ptr<WeightStore> w_;
  Backend& ops_;
};

}  // namespace

bool flux_vae_matches(const WeightStore& weights) {
  return (weights.has("decoder.conv_in.weight") && weights.has("decoder.mid.attn_1.q.weight")) ||
         is_diffusers_flux_vae(weights);
}

namespace {

// A diffusers file's config error also names the tensor as that file calls it.
FluxVaeConfig detect_diffusers(const WeightStore& view, const std::string& source) {
  try {
    return detect_flux_vae_config(view, source);
  } catch (const Error& e) {
    std::string msg = e.what();
    int levels = 0;
    while (view.has("decoder.up." + std::to_string(levels) + ".block.0.conv1.weight")) ++levels;
    for (size_t at = msg.find("coder."); at != std::string::npos; at = msg.find("coder.", at + 1)) {
      if (at < 2) continue;
      const size_t start = at - 2, end = msg.find_first_of(" ,:;)", start);
      const std::string name = msg.substr(start, end == std::string::npos ? std::string::npos : end - start);
      const std::string d = flux_vae_diffusers_name(name, levels);
      if (!d.empty()) fail(msg, " (diffusers name ", d, ")");
    }
    throw;
  }
}

}  // namespace

std::string flux_vae_variant(const WeightStore& weights, const std::string& source) {
  if (is_diffusers_flux_vae(weights)) {
    const auto view = diffusers_flux_vae_view(weights, source);
    return describe(detect_diffusers(*view, source)) + ", diffusers names";
  }
  return describe(detect_flux_vae_config(weights, source));
}

std::unique_ptr<LatentCodec> make_flux_vae_codec(std::unique_ptr<WeightStore> weights, Backend& backend,
                                                 const std::string& source) {
  const bool diffusers = is_diffusers_flux_vae(*weights);
  if (diffusers) weights = diffusers_flux_vae_view(std::move(weights), source);
  FluxVaeConfig c = diffusers ? detect_diffusers(*weights, source) : detect_flux_vae_config(*weights, source);
  weights->bind(backend);
  return std::make_unique<FluxVaeCodec>(std::move(c), std::move(weights), backend);
}

}  // namespace raylight
