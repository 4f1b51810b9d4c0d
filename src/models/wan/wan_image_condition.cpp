#include "models/wan/wan_image_condition.h"

#include <cstring>

#include "core/error.h"
#include "core/finite.h"
#include "models/common/bicubic_resize.h"

namespace raylight {
namespace {

// The VAE's 4x8x8 stride.
constexpr int64_t kFrameStride = 4, kPixelStride = 8;

void check_picture(const Tensor& image, const char* which) {
  if (!image.defined() || image.ndim() != 3 || image.dim(0) != 3 || image.dim(1) < 1 || image.dim(2) < 1)
    fail("the ", which, " must be a picture [3, H, W]; got ",
         image.defined() ? shape_str(image.shape()) : std::string("nothing"));
  finite_f32(image.to_f32(), std::string("the ") + which);
}

}  // namespace

Tensor wan_frame_mask(int64_t frames, int64_t lat_h, int64_t lat_w, bool last) {
  if (frames < 1 || (frames - 1) % kFrameStride != 0 || lat_h < 1 || lat_w < 1)
    fail("frame mask: frames must be 4k+1 and the latent non-empty, got ", frames, " frames of ", lat_w, "x", lat_h);
  const int64_t groups = 1 + (frames - 1) / kFrameStride;
  Tensor mask = Tensor::zeros({4, groups, lat_h, lat_w});
  const int64_t plane = lat_h * lat_w;
  for (int64_t c = 0; c < 4; ++c)
    for (int64_t f = 0; f < groups; ++f) {
      // Frame 0 stands four times at the front, so repeated frame j is video frame j - 3.
      const int64_t j = kFrameStride * f + c;
      const int64_t frame = j < kFrameStride ? 0 : j - (kFrameStride - 1);
      const bool kept = frame == 0 || (last && frame == frames - 1);
      if (!kept) continue;
      float* p = mask.f32() + (c * groups + f) * plane;
      for (int64_t i = 0; i < plane; ++i) p[i] = 1.0f;
    }
  return mask;
}

Tensor wan_fit_frame(const Tensor& image, int64_t height, int64_t width) {
  return bicubic_resize(center_crop_to_aspect(image.to_f32(), height, width), height, width);
}

Tensor wan_condition_video(const Tensor& first, const Tensor& last, int64_t frames) {
  const int64_t H = first.dim(1), W = first.dim(2), plane = H * W;
  if (last.defined() && (last.shape() != first.shape() || frames < 2))
    fail("the last frame must be fitted like the first, and the video have 2 frames or more");
  Tensor video = Tensor::zeros({3, frames, H, W});
  const Tensor a = first.to_f32();
  const Tensor b = last.defined() ? last.to_f32() : Tensor();
  for (int64_t c = 0; c < 3; ++c) {
    std::memcpy(video.f32() + c * frames * plane, a.f32() + c * plane, plane * sizeof(float));
    if (b.defined())
      std::memcpy(video.f32() + (c * frames + frames - 1) * plane, b.f32() + c * plane, plane * sizeof(float));
  }
  return video;
}

Conditioning wan_image_conditioning(const WanConfig& c, const std::vector<Tensor>& images, const Shape& item,
                                    LatentCodec& codec, ImageEncoder* encoder) {
  if (!c.takes_y()) fail(c.variant(), " takes no image: it is not an image-to-video model");
  const size_t most = c.first_last_frame ? 2 : 1;
  if (images.empty() || images.size() > most)
    fail(c.variant(), " takes ", c.first_last_frame ? "a first and a last frame" : "one start frame", "; ",
         images.size(), " picture(s) given", images.size() > most ? " (a last frame needs an FLF2V model)" : "");
  if (c.first_last_frame && images.size() != 2)
    fail(c.variant(), " is a first-last-frame model: give the last frame too (--last-image FILE)");
  if (item.size() != 4 || item[0] != c.out_dim || item[1] < 1)
    fail("image conditioning: latent item ", shape_str(item), " is not [", c.out_dim, ", F, H, W]");
  if (codec.latent_channels() + 4 != c.in_dim - c.out_dim)
    fail("the VAE ", codec.variant(), " makes ", codec.latent_channels(), " channels; ", c.variant(), " reads ",
         c.in_dim - c.out_dim - 4, " image channels beside the 4 mask channels");
  check_picture(images[0], "start frame");
  if (images.size() == 2) check_picture(images[1], "last frame");
  const int64_t frames = 1 + (item[1] - 1) * kFrameStride;
  const int64_t height = item[2] * kPixelStride, width = item[3] * kPixelStride;

  const Tensor first = wan_fit_frame(images[0], height, width);
  const Tensor last = images.size() == 2 ? wan_fit_frame(images[1], height, width) : Tensor();
  const Tensor latent = codec.encode(wan_condition_video(first, last, frames));
  const Shape want = {codec.latent_channels(), item[1], item[2], item[3]};
  if (latent.shape() != want)
    fail("the VAE encoded the conditioning video to ", shape_str(latent.shape()), "; expected ", shape_str(want));
  const Tensor mask = wan_frame_mask(frames, item[2], item[3], images.size() == 2);
  Tensor y = Tensor::empty({4 + want[0], item[1], item[2], item[3]});
  const Tensor lat = latent.to_f32();
  std::memcpy(y.f32(), mask.f32(), mask.nbytes());
  std::memcpy(y.f32() + mask.numel(), lat.f32(), lat.nbytes());
  Conditioning out{{"y", y}};
  if (!c.image_to_video()) return out;  // Wan 2.2 I2V: no CLIP branch

  if (!encoder) fail(c.variant(), " needs a CLIP vision encoder (--clip-vision FILE)");
  auto clip = [&](const Tensor& image) {
    Conditioning e = encoder->encode(image);
    auto it = e.find("clip_fea");
    if (it == e.end()) fail("the image encoder ", encoder->variant(), " makes no 'clip_fea'");
    Tensor t = it->second.to_f32();
    if (t.ndim() != 2 || t.dim(1) != c.clip_dim)
      fail("the image encoder ", encoder->variant(), " makes clip_fea ", shape_str(t.shape()), "; ", c.variant(),
           " reads [tokens, ", c.clip_dim, "]");
    return t;
  };
  Tensor fea = clip(images[0]);
  if (images.size() == 2) {
    const Tensor second = clip(images[1]);
    Tensor both = Tensor::empty({fea.dim(0) + second.dim(0), c.clip_dim});
    std::memcpy(both.f32(), fea.f32(), fea.nbytes());
    std::memcpy(both.f32() + fea.numel(), second.f32(), second.nbytes());
    fea = both;
  }
  if (c.first_last_frame && fea.dim(0) != c.image_tokens)
    fail("the image encoder ", encoder->variant(), " makes ", fea.dim(0) / 2, " tokens per frame; ", c.variant(),
         " positions ", c.image_tokens / 2);
  out["clip_fea"] = fea;
  return out;
}

}  // namespace raylight
