// WanVae: argument checks, the chunk loops, and the host-side edges (latent statistics,
// clamping, [C, F, H, W] <-> frame-major chunks). All compute is in the layer stacks.
#include "models/vae/wan_vae.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "models/vae/wan_vae_net.h"

namespace raylight {
namespace {

// Frames [f0, f1) of a host clip [C, F, H, W] as a frame-major host chunk [f1-f0, C, H, W],
// each channel c mapped through v * mul[c] + add[c] (identity when mul is null).
Tensor frame_major_chunk(const Tensor& clip, int64_t f0, int64_t f1, const float* mul, const float* add) {
  const int64_t C = clip.dim(0), F = clip.dim(1), S = clip.dim(2) * clip.dim(3);
  Tensor out = Tensor::empty({f1 - f0, C, clip.dim(2), clip.dim(3)});
  const float* src = clip.f32();
  float* dst = out.f32();
  for (int64_t f = f0; f < f1; ++f)
    for (int64_t c = 0; c < C; ++c) {
      const float* s = src + (c * F + f) * S;
      float* d = dst + ((f - f0) * C + c) * S;
      if (!mul) {
        std::copy(s, s + S, d);
        continue;
      }
      for (int64_t i = 0; i < S; ++i) d[i] = static_cast<float>(static_cast<double>(s[i]) * mul[c] + add[c]);
    }
  return out;
}

Tensor host_f32(const Tensor& t, const char* what) {
  if (!t.defined()) fail(what, " is missing");
  if (t.device() != Device::CPU) fail(what, " must be a host tensor");
  if (!dtype_is_float(t.dtype())) fail(what, " has dtype ", dtype_name(t.dtype()), ", expected a float type");
  return t.to_f32();
}

}  // namespace

std::unique_ptr<WanVae> WanVae::from_weights(std::unique_ptr<WeightStore> weights, Backend& backend,
                                             const std::string& source) {
  WanVaeConfig config = detect_wan_vae_config(*weights, source);
  weights->bind(backend);
  return std::unique_ptr<WanVae>(new WanVae(std::move(config), std::move(weights), backend));
}

// Memory: the loop holds one chunk at a time. Per chunk, device memory is bounded by that
// chunk's activations (at most 4 * frames_per_chunk output frames; the widest tensors are
// at full resolution) plus the temporal caches, which hold kt - 1 = 2 input frames per
// causal 3x3x3 conv and 2 per time_conv, whatever the clip length. For the released VAE
// (base width 96) at 720x1280 in bf16 with the official 1-frame chunks: the caches are about
// 4.5 GB (mostly the 7 convs of the 96-channel 720p level: 7 x 2 x 96 x 720 x 1280 x 2 B),
// the largest transient is the 192-channel 4-frame 720p nearest upsample (1.4 GB) before
// the last spatial conv, and the peak is about 10 GB, so an 81-frame 720p decode fits a
// 24 GiB card. The decoded video itself accumulates on the host, never on the device.
// Memory grows with H x W (no spatial tiling) and with frames_per_chunk, never with F.
Tensor WanVae::decode(const Tensor& latent_in, const Progress& progress, int64_t frames_per_chunk) {
  const Tensor latent = host_f32(latent_in, "VAE decode: the latent");
  const int64_t z = config_.z_dim;
  if (latent.ndim() != 4 || latent.dim(0) != z || latent.dim(1) < 1 || latent.dim(2) < 1 || latent.dim(3) < 1)
    fail("VAE decode: latent has shape ", shape_str(latent.shape()), ", expected [", z,
         ", frames, height, width] (", z, " latent channels first)");
  if (frames_per_chunk < 1) fail("VAE decode: frames_per_chunk must be >= 1, got ", frames_per_chunk);
  const int64_t F = latent.dim(1), H = 8 * latent.dim(2), W = 8 * latent.dim(3);
  const int64_t frames = video_frames(F);
  Tensor video = Tensor::empty({3, frames, H, W});
  float* out = video.f32();
  VaeStack decoder = make_wan_vae_decoder(config_);
  VaeContext ctx{ops_, *weights_};
  int64_t done = 0;  // video frames written
  for (int64_t f0 = 0; f0 < F;) {
    const int64_t f1 = f0 == 0 ? 1 : std::min(F, f0 + frames_per_chunk);
    Tensor x = ops_.upload(frame_major_chunk(latent, f0, f1, kWanVaeLatentStd, kWanVaeLatentMean));
    Tensor y = ops_.download(decoder.forward(ctx, x));
    const int64_t n = y.dim(0), S = H * W;
    if (y.ndim() != 4 || y.dim(1) != 3 || y.dim(2) != H || y.dim(3) != W || done + n > frames)
      fail("VAE decode: internal error, chunk output ", shape_str(y.shape()));
    const float* yp = y.f32();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < 3; ++c) {
        const float* s = yp + (i * 3 + c) * S;
        float* d = out + (c * frames + done + i) * S;
        for (int64_t p = 0; p < S; ++p) d[p] = std::clamp(s[p], -1.0f, 1.0f);
      }
    done += n;
    f0 = f1;
    if (progress) progress(f0, F);
  }
  if (done != frames) fail("VAE decode: internal error, decoded ", done, " of ", frames, " frames");
  return video;
}

Tensor WanVae::encode(const Tensor& video_in, const Progress& progress, int64_t frames_per_chunk) {
  if (!config_.has_encoder) fail("VAE encode: these VAE weights have no encoder (no encoder.conv1.weight)");
  const Tensor video = host_f32(video_in, "VAE encode: the video");
  if (video.ndim() != 4 || video.dim(0) != 3 || video.dim(1) < 1 || (video.dim(1) - 1) % 4 ||
      video.dim(2) < 8 || video.dim(2) % 8 || video.dim(3) < 8 || video.dim(3) % 8)
    fail("VAE encode: video has shape ", shape_str(video.shape()),
         ", expected [3, 1 + 4k frames, height, width] with height and width multiples of 8");
  if (frames_per_chunk < 4 || frames_per_chunk % 4)
    fail("VAE encode: frames_per_chunk must be a positive multiple of 4, got ", frames_per_chunk);
  const int64_t F = video.dim(1), z = config_.z_dim;
  const int64_t Fl = 1 + (F - 1) / 4, h = video.dim(2) / 8, w = video.dim(3) / 8, S = h * w;
  Tensor latent = Tensor::empty({z, Fl, h, w});
  float* out = latent.f32();
  VaeStack encoder = make_wan_vae_encoder(config_);
  VaeContext ctx{ops_, *weights_};
  int64_t done = 0;  // latent frames written
  for (int64_t f0 = 0; f0 < F;) {
    const int64_t f1 = f0 == 0 ? 1 : std::min(F, f0 + frames_per_chunk);
    Tensor y = ops_.download(encoder.forward(ctx, ops_.upload(frame_major_chunk(video, f0, f1, nullptr, nullptr))));
    const int64_t n = y.dim(0);
    if (y.ndim() != 4 || y.dim(1) != 2 * z || y.dim(2) != h || y.dim(3) != w || done + n > Fl)
      fail("VAE encode: internal error, chunk output ", shape_str(y.shape()));
    const float* yp = y.f32();
    // Channels [0, z) are mu (the rest, log_var, is unused); normalise for the DiT.
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < z; ++c) {
        const float* s = yp + (i * 2 * z + c) * S;
        float* d = out + (c * Fl + done + i) * S;
        const double mean = kWanVaeLatentMean[c], inv_std = 1.0 / kWanVaeLatentStd[c];
        for (int64_t p = 0; p < S; ++p) d[p] = static_cast<float>((s[p] - mean) * inv_std);
      }
    done += n;
    f0 = f1;
    if (progress) progress(done, Fl);
  }
  if (done != Fl) fail("VAE encode: internal error, encoded ", done, " of ", Fl, " latent frames");
  return latent;
}

}  // namespace raylight
