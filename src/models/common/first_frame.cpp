#include "models/common/first_frame.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/finite.h"

namespace raylight {
namespace {

double lanczos3(double x) {
  if (x == 0) return 1.0;
  if (x <= -3.0 || x >= 3.0) return 0.0;
  const double px = M_PI * x;
  return 3.0 * std::sin(px) * std::sin(px / 3.0) / (px * px);
}

// One axis of PIL's resampling: for output i, the input taps [first, first + n) and weights.
struct Taps {
  std::vector<int64_t> first;
  std::vector<std::vector<double>> weights;
};

Taps taps(int64_t in, int64_t out) {
  Taps t;
  const double scale = static_cast<double>(in) / static_cast<double>(out), filter = std::max(scale, 1.0);
  const double support = 3.0 * filter;
  for (int64_t i = 0; i < out; ++i) {
    const double center = (static_cast<double>(i) + 0.5) * scale;
    const int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t hi = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in);
    std::vector<double> w;
    double sum = 0;
    for (int64_t j = lo; j < hi; ++j) {
      w.push_back(lanczos3((static_cast<double>(j) - center + 0.5) / filter));
      sum += w.back();
    }
    for (double& v : w) v = sum != 0 ? v / sum : 0;
    t.first.push_back(lo);
    t.weights.push_back(std::move(w));
  }
  return t;
}

}  // namespace

Tensor fit_picture_cover(const Tensor& picture_in, int64_t width, int64_t height) {
  if (!picture_in.defined() || picture_in.device() != Device::CPU || picture_in.ndim() != 3 ||
      picture_in.dim(0) != 3 || picture_in.dim(1) < 1 || picture_in.dim(2) < 1)
    fail("the image must be a host picture [3, height, width], got ",
         picture_in.defined() ? shape_str(picture_in.shape()) : "none");
  if (width < 1 || height < 1) fail("the image's target size must be positive, got ", width, "x", height);
  const Tensor picture = picture_in.to_f32();
  finite_f32(picture, "the image");
  const int64_t ih = picture.dim(1), iw = picture.dim(2);
  // textimage2video.py: scale = max(ow / iw, oh / ih), resize to round(side * scale), crop.
  const double scale = std::max(static_cast<double>(width) / iw, static_cast<double>(height) / ih);
  const int64_t rw = std::max<int64_t>(width, std::llround(iw * scale));
  const int64_t rh = std::max<int64_t>(height, std::llround(ih * scale));
  const Taps tx = taps(iw, rw), ty = taps(ih, rh);
  const int64_t x0 = (rw - width) / 2, y0 = (rh - height) / 2;
  Tensor out = Tensor::empty({3, height, width});
  for (int64_t c = 0; c < 3; ++c) {
    const float* src = picture.f32() + c * ih * iw;
    // Horizontal pass over the rows the crop keeps' vertical taps read, then vertical.
    std::vector<double> horizontal(static_cast<size_t>(ih * width));
    for (int64_t y = 0; y < ih; ++y)
      for (int64_t x = 0; x < width; ++x) {
        const auto& w = tx.weights[x0 + x];
        double s = 0;
        for (size_t k = 0; k < w.size(); ++k) s += w[k] * src[y * iw + tx.first[x0 + x] + static_cast<int64_t>(k)];
        horizontal[y * width + x] = s;
      }
    for (int64_t y = 0; y < height; ++y) {
      const auto& w = ty.weights[y0 + y];
      for (int64_t x = 0; x < width; ++x) {
        double s = 0;
        for (size_t k = 0; k < w.size(); ++k) s += w[k] * horizontal[(ty.first[y0 + y] + static_cast<int64_t>(k)) * width + x];
        out.f32()[(c * height + y) * width + x] = static_cast<float>(std::clamp(s, -1.0, 1.0));
      }
    }
  }
  return out;
}

Tensor encode_first_frame(const Tensor& picture, const Shape& item, LatentCodec& codec) {
  if (item.size() != 4 || item[0] != codec.latent_channels())
    fail("image-to-video: the latent ", shape_str(item), " does not fit the VAE's ", codec.latent_channels(),
         " channels");
  const LatentTiling tiling = codec.tiling();
  const int64_t scale = tiling.scale > 0 ? tiling.scale : 16;
  const Tensor fitted = fit_picture_cover(picture, item[3] * scale, item[2] * scale);
  const Tensor frame = fitted.reshape({3, 1, fitted.dim(1), fitted.dim(2)});
  Tensor z = codec.encode(frame);
  if (z.ndim() != 4 || z.dim(0) != item[0] || z.dim(1) != 1 || z.dim(2) != item[2] || z.dim(3) != item[3])
    fail("image-to-video: the VAE encoded the image to ", shape_str(z.shape()), ", expected [", item[0], ", 1, ",
         item[2], ", ", item[3], "]");
  return z;
}

void write_first_frame(Tensor& x, const Tensor& first_frame) {
  const Tensor f = first_frame.to_f32();
  if (x.ndim() != 4 || f.ndim() != 4 || f.dim(0) != x.dim(0) || f.dim(1) != 1 || f.dim(2) != x.dim(2) ||
      f.dim(3) != x.dim(3) || x.dtype() != DType::F32)
    fail("first frame ", shape_str(f.shape()), " does not fit frame 0 of the latent ", shape_str(x.shape()));
  const int64_t plane = x.dim(2) * x.dim(3), frames = x.dim(1);
  for (int64_t c = 0; c < x.dim(0); ++c)
    std::memcpy(x.f32() + c * frames * plane, f.f32() + c * plane, static_cast<size_t>(plane) * sizeof(float));
}

}  // namespace raylight
