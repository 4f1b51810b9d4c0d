// Wan22Vae: argument checks, the chunk loops and the host edges (latent statistics, the
// 2x2 patchify, clamping, [C, F, H, W] <-> frame-major chunks). Compute is in the stacks.
#include "models/vae/wan22_vae.h"

#include <algorithm>

#include "core/error.h"
#include "models/common/latent_tiles.h"
#include "models/vae/wan22_vae_net.h"

namespace raylight {
namespace {

// Latent frames [f0, f1) of [z, F, h, w], de-normalised (v * std + mean), frame-major.
Tensor latent_chunk(const Tensor& latent, int64_t f0, int64_t f1) {
  const int64_t z = latent.dim(0), F = latent.dim(1), S = latent.dim(2) * latent.dim(3);
  Tensor out = Tensor::empty({f1 - f0, z, latent.dim(2), latent.dim(3)});
  for (int64_t f = f0; f < f1; ++f)
    for (int64_t c = 0; c < z; ++c) {
      const float* s = latent.f32() + (c * F + f) * S;
      float* d = out.f32() + ((f - f0) * z + c) * S;
      for (int64_t i = 0; i < S; ++i)
        d[i] = static_cast<float>(static_cast<double>(s[i]) * kWan22VaeLatentStd[c] + kWan22VaeLatentMean[c]);
    }
  return out;
}

// Video frames [f0, f1) of [3, F, H, W] patchified into frame-major [f1-f0, 12, H/2, W/2].
Tensor patchified_chunk(const Tensor& video, int64_t f0, int64_t f1) {
  const int64_t F = video.dim(1), H = video.dim(2), W = video.dim(3), h = H / 2, w = W / 2;
  Tensor out = Tensor::empty({f1 - f0, 12, h, w});
  for (int64_t f = f0; f < f1; ++f)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t dw = 0; dw < 2; ++dw)
        for (int64_t dh = 0; dh < 2; ++dh) {
          float* d = out.f32() + ((f - f0) * 12 + c * 4 + dw * 2 + dh) * h * w;
          const float* s = video.f32() + (c * F + f) * H * W;
          for (int64_t y = 0; y < h; ++y)
            for (int64_t x = 0; x < w; ++x) d[y * w + x] = s[(2 * y + dh) * W + 2 * x + dw];
        }
  return out;
}

// A decoded chunk [n, 12, h, w] unpatchified and clamped into frames [done, done + n) of
// video [3, frames, 2h, 2w].
void put_frames(const Tensor& y, Tensor& video, int64_t done) {
  const int64_t n = y.dim(0), h = y.dim(2), w = y.dim(3), frames = video.dim(1), H = 2 * h, W = 2 * w;
  if (y.ndim() != 4 || y.dim(1) != 12 || video.dim(2) != H || video.dim(3) != W || done + n > frames)
    fail("VAE decode: internal error, chunk output ", shape_str(y.shape()));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t dw = 0; dw < 2; ++dw)
        for (int64_t dh = 0; dh < 2; ++dh) {
          const float* s = y.f32() + (i * 12 + c * 4 + dw * 2 + dh) * h * w;
          float* d = video.f32() + (c * frames + done + i) * H * W;
          for (int64_t r = 0; r < h; ++r)
            for (int64_t x = 0; x < w; ++x) d[(2 * r + dh) * W + 2 * x + dw] = std::clamp(s[r * w + x], -1.0f, 1.0f);
        }
}

Tensor host_f32(const Tensor& t, const char* what) {
  if (!t.defined()) fail(what, " is missing");
  if (t.device() != Device::CPU) fail(what, " must be a host tensor");
  if (!dtype_is_float(t.dtype())) fail(what, " has dtype ", dtype_name(t.dtype()), ", expected a float type");
  return t.to_f32();
}

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

class Wan22VaeRegions final : public RegionDecoder {
 public:
  Wan22VaeRegions(const Wan22VaeConfig& config, Backend& ops, WeightStore& weights, std::vector<Tensor> chunks,
                  int64_t latent_frames, int64_t height, int64_t width)
      : config_(config), ops_(ops), weights_(weights), chunks_(std::move(chunks)), frames_(latent_frames),
        height_(height), width_(width) {}

  Tensor decode(const LatentRegion& r) override {
    if (r.y0 < 0 || r.x0 < 0 || r.y1 > height_ || r.x1 > width_ || r.height() < 1 || r.width() < 1)
      fail("VAE decode: region [", r.y0, ", ", r.y1, ") x [", r.x0, ", ", r.x1, ") outside the ", height_, "x",
           width_, " latent");
    Tensor video = Tensor::empty({3, Wan22Vae::video_frames(frames_), 16 * r.height(), 16 * r.width()});
    VaeStack suffix = make_wan22_vae_decoder_suffix(config_);
    VaeContext ctx{ops_, weights_};
    int64_t done = 0;
    for (const Tensor& chunk : chunks_) {
      Tensor y = ops_.download(suffix.forward(ctx, ops_.upload(crop_clip(chunk, r))));
      put_frames(y, video, done);
      done += y.dim(0);
    }
    if (done != video.dim(1)) fail("VAE decode: internal error, decoded ", done, " of ", video.dim(1), " frames");
    return video;
  }

 private:
  const Wan22VaeConfig& config_;
  Backend& ops_;
  WeightStore& weights_;
  std::vector<Tensor> chunks_;  // the prefix's output, frame-major host chunks
  int64_t frames_, height_, width_;
};

}  // namespace

std::unique_ptr<Wan22Vae> Wan22Vae::from_weights(std::unique_ptr<WeightStore> weights, Backend& backend,
                                                 const std::string& source) {
  Wan22VaeConfig config = detect_wan22_vae_config(*weights, source);
  weights->bind(backend);
  return std::unique_ptr<Wan22Vae>(new Wan22Vae(std::move(config), std::move(weights), backend));
}

Tensor Wan22Vae::checked_latent(const Tensor& latent_in) const {
  Tensor latent = host_f32(latent_in, "VAE decode: the latent");
  const int64_t z = config_.z_dim;
  if (latent.ndim() != 4 || latent.dim(0) != z || latent.dim(1) < 1 || latent.dim(2) < 1 || latent.dim(3) < 1)
    fail("VAE decode: latent has shape ", shape_str(latent.shape()), ", expected [", z,
         ", frames, height, width] (the Wan 2.2 VAE's ", z, " latent channels first)");
  return latent;
}

// Memory: as the Wan 2.1 decode, one chunk at a time plus the causal caches (2 input frames
// per 3x3x3 conv); wan22_vae_codec.cpp states the model.
Tensor Wan22Vae::decode(const Tensor& latent_in, const Progress& progress) {
  const Tensor latent = checked_latent(latent_in);
  const int64_t F = latent.dim(1);
  Tensor video = Tensor::empty({3, video_frames(F), 16 * latent.dim(2), 16 * latent.dim(3)});
  VaeStack decoder = make_wan22_vae_decoder(config_);
  VaeContext ctx{ops_, *weights_};
  int64_t done = 0;
  for (int64_t f = 0; f < F; ++f) {  // one latent frame per chunk, as the official decode
    Tensor y = ops_.download(decoder.forward(ctx, ops_.upload(latent_chunk(latent, f, f + 1))));
    put_frames(y, video, done);
    done += y.dim(0);
    if (progress) progress(f + 1, F);
  }
  if (done != video.dim(1)) fail("VAE decode: internal error, decoded ", done, " of ", video.dim(1), " frames");
  return video;
}

Tensor Wan22Vae::encode(const Tensor& video_in, const Progress& progress) {
  if (!config_.has_encoder) fail("VAE encode: these VAE weights have no encoder (no encoder.conv1.weight)");
  const Tensor video = host_f32(video_in, "VAE encode: the video");
  if (video.ndim() != 4 || video.dim(0) != 3 || video.dim(1) < 1 || (video.dim(1) - 1) % 4 || video.dim(2) < 16 ||
      video.dim(2) % 16 || video.dim(3) < 16 || video.dim(3) % 16)
    fail("VAE encode: video has shape ", shape_str(video.shape()),
         ", expected [3, 1 + 4k frames, height, width] with height and width multiples of 16 (the Wan 2.2 VAE)");
  const int64_t F = video.dim(1), z = config_.z_dim;
  const int64_t Fl = 1 + (F - 1) / 4, h = video.dim(2) / 16, w = video.dim(3) / 16, S = h * w;
  Tensor latent = Tensor::empty({z, Fl, h, w});
  VaeStack encoder = make_wan22_vae_encoder(config_);
  VaeContext ctx{ops_, *weights_};
  int64_t done = 0;
  for (int64_t f0 = 0; f0 < F;) {
    const int64_t f1 = f0 == 0 ? 1 : std::min(F, f0 + 4);  // the official chunks: 1, then 4
    Tensor y = ops_.download(encoder.forward(ctx, ops_.upload(patchified_chunk(video, f0, f1))));
    const int64_t n = y.dim(0);
    if (y.ndim() != 4 || y.dim(1) != 2 * z || y.dim(2) != h || y.dim(3) != w || done + n > Fl)
      fail("VAE encode: internal error, chunk output ", shape_str(y.shape()));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < z; ++c) {  // mu (the first z channels), normalised
        const float* s = y.f32() + (i * 2 * z + c) * S;
        float* d = latent.f32() + (c * Fl + done + i) * S;
        const double mean = kWan22VaeLatentMean[c], inv_std = 1.0 / kWan22VaeLatentStd[c];
        for (int64_t p = 0; p < S; ++p) d[p] = static_cast<float>((s[p] - mean) * inv_std);
      }
    done += n;
    f0 = f1;
    if (progress) progress(done, Fl);
  }
  if (done != Fl) fail("VAE encode: internal error, encoded ", done, " of ", Fl, " latent frames");
  return latent;
}

int64_t Wan22Vae::region_context() const { return wan22_vae_suffix_context(config_); }

std::unique_ptr<RegionDecoder> Wan22Vae::regions(const Tensor& latent_in) {
  const Tensor latent = checked_latent(latent_in);
  const int64_t F = latent.dim(1);
  VaeStack prefix = make_wan22_vae_decoder_prefix(config_);
  VaeContext ctx{ops_, *weights_};
  std::vector<Tensor> chunks;
  for (int64_t f = 0; f < F; ++f)
    chunks.push_back(ops_.download(prefix.forward(ctx, ops_.upload(latent_chunk(latent, f, f + 1)))));
  return std::make_unique<Wan22VaeRegions>(config_, ops_, *weights_, std::move(chunks), F, latent.dim(2),
                                           latent.dim(3));
}

}  // namespace raylight
