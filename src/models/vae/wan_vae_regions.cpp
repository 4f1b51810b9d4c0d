// WanVae::regions: the tiled decode's Wan side. The prefix of the decoder runs once over
// the whole latent; regions of its output stream through the local suffix.
#include <algorithm>

#include "core/error.h"
#include "models/common/latent_tiles.h"
#include "models/vae/wan_vae.h"
#include "models/vae/wan_vae_net.h"

namespace raylight {
namespace {

// Rows [y0, y1) and columns [x0, x1) of a frame-major host clip [T, C, H, W].
Tensor crop_clip(const Tensor& clip, const LatentRegion& r) {
  const int64_t planes = clip.dim(0) * clip.dim(1), H = clip.dim(2), W = clip.dim(3);
  Tensor out = Tensor::empty({clip.dim(0), clip.dim(1), r.height(), r.width()});
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t y = r.y0; y < r.y1; ++y) {
      const float* s = clip.f32() + (p * H + y) * W + r.x0;
      std::copy(s, s + r.width(), out.f32() + (p * r.height() + y - r.y0) * r.width());
    }
  return out;
}

class WanVaeRegions final : public RegionDecoder {
 public:
  WanVaeRegions(const WanVaeConfig& config, Backend& ops, WeightStore& weights, std::vector<Tensor> chunks,
                int64_t latent_frames, int64_t height, int64_t width)
      : config_(config), ops_(ops), weights_(weights), chunks_(std::move(chunks)), frames_(latent_frames),
        height_(height), width_(width) {}

  Tensor decode(const LatentRegion& r) override {
    if (r.y0 < 0 || r.x0 < 0 || r.y1 > height_ || r.x1 > width_ || r.height() < 1 || r.width() < 1)
      fail("VAE decode: region [", r.y0, ", ", r.y1, ") x [", r.x0, ", ", r.x1, ") outside the ", height_, "x",
           width_, " latent");
    const int64_t frames = WanVae::video_frames(frames_), H = 8 * r.height(), W = 8 * r.width(), S = H * W;
    Tensor video = Tensor::empty({3, frames, H, W});
    VaeStack suffix = make_wan_vae_decoder_suffix(config_);
    VaeContext ctx{ops_, weights_};
    int64_t done = 0;
    for (const Tensor& chunk : chunks_) {
      Tensor y = ops_.download(suffix.forward(ctx, ops_.upload(crop_clip(chunk, r))));
      const int64_t n = y.dim(0);
      if (y.ndim() != 4 || y.dim(1) != 3 || y.dim(2) != H || y.dim(3) != W || done + n > frames)
        fail("VAE decode: internal error, region chunk output ", shape_str(y.shape()));
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < 3; ++c) {
          const float* s = y.f32() + (i * 3 + c) * S;
          float* d = video.f32() + (c * frames + done + i) * S;
          for (int64_t p = 0; p < S; ++p) d[p] = std::clamp(s[p], -1.0f, 1.0f);
        }
      done += n;
    }
    if (done != frames) fail("VAE decode: internal error, decoded ", done, " of ", frames, " frames");
    return video;
  }

 private:
  const WanVaeConfig& config_;
  Backend& ops_;
  WeightStore& weights_;
  std::vector<Tensor> chunks_;  // the prefix's output, frame-major host chunks
  int64_t frames_, height_, width_;
};

}  // namespace

int64_t WanVae::region_context() const { return wan_vae_suffix_context(config_); }

std::unique_ptr<RegionDecoder> WanVae::regions(const Tensor& latent_in, int64_t frames_per_chunk) {
  if (!latent_in.defined() || latent_in.device() != Device::CPU || !dtype_is_float(latent_in.dtype()))
    fail("VAE decode: the latent must be a host float tensor");
  const Tensor latent = latent_in.to_f32();
  const int64_t z = config_.z_dim;
  if (latent.ndim() != 4 || latent.dim(0) != z || latent.dim(1) < 1 || latent.dim(2) < 1 || latent.dim(3) < 1)
    fail("VAE decode: latent has shape ", shape_str(latent.shape()), ", expected [", z,
         ", frames, height, width] (", z, " latent channels first)");
  if (frames_per_chunk < 1) fail("VAE decode: frames_per_chunk must be >= 1, got ", frames_per_chunk);
  const int64_t F = latent.dim(1), h = latent.dim(2), w = latent.dim(3), S = h * w;
  VaeStack prefix = make_wan_vae_decoder_prefix(config_);
  VaeContext ctx{ops_, *weights_};
  std::vector<Tensor> chunks;
  for (int64_t f0 = 0; f0 < F;) {
    const int64_t f1 = f0 == 0 ? 1 : std::min(F, f0 + frames_per_chunk);
    // Frame-major chunk, de-normalised: z * std + mean per channel.
    Tensor x = Tensor::empty({f1 - f0, z, h, w});
    for (int64_t f = f0; f < f1; ++f)
      for (int64_t c = 0; c < z; ++c) {
        const float* s = latent.f32() + (c * F + f) * S;
        float* d = x.f32() + ((f - f0) * z + c) * S;
        for (int64_t i = 0; i < S; ++i)
          d[i] = static_cast<float>(static_cast<double>(s[i]) * kWanVaeLatentStd[c] + kWanVaeLatentMean[c]);
      }
    chunks.push_back(ops_.download(prefix.forward(ctx, ops_.upload(x))));
    f0 = f1;
  }
  return std::make_unique<WanVaeRegions>(config_, ops_, *weights_, std::move(chunks), F, h, w);
}

}  // namespace raylight
