#include "io/image/lanczos_resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace raylight {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's fixed point for 8-bit pictures
constexpr double kSupport = 3.0;

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= M_PI;
  return std::sin(x) / x;
}

double lanczos(double x) { return (-kSupport <= x && x < kSupport) ? sinc(x) * sinc(x / kSupport) : 0.0; }

// For each output position: the first input index, how many inputs, and their fixed-point
// weights.
struct Coefficients {
  int64_t ksize = 0;
  std::vector<int64_t> first, count;
  std::vector<int32_t> k;  // out * ksize
};

Coefficients coefficients(int64_t in_size, int64_t out_size) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filterscale = std::max(scale, 1.0);
  const double support = kSupport * filterscale;
  Coefficients c;
  c.ksize = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  c.first.resize(static_cast<size_t>(out_size));
  c.count.resize(static_cast<size_t>(out_size));
  c.k.assign(static_cast<size_t>(out_size * c.ksize), 0);
  std::vector<double> w(static_cast<size_t>(c.ksize));
  for (int64_t o = 0; o < out_size; ++o) {
    const double center = (static_cast<double>(o) + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    // Pillow rounds with a truncating cast.
    int64_t xmin = static_cast<int64_t>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int64_t xmax = static_cast<int64_t>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int64_t x = 0; x < xmax; ++x) {
      w[static_cast<size_t>(x)] = lanczos((static_cast<double>(x + xmin) - center + 0.5) * ss);
      ww += w[static_cast<size_t>(x)];
    }
    for (int64_t x = 0; x < xmax; ++x) {
      double v = w[static_cast<size_t>(x)];
      if (ww != 0.0) v /= ww;
      const double f = v * static_cast<double>(1 << kPrecisionBits);
      c.k[static_cast<size_t>(o * c.ksize + x)] = static_cast<int32_t>(v < 0 ? -0.5 + f : 0.5 + f);
    }
    c.first[static_cast<size_t>(o)] = xmin;
    c.count[static_cast<size_t>(o)] = xmax;
  }
  return c;
}

uint8_t clip8(int64_t v) {
  const int64_t s = v >> kPrecisionBits;  // arithmetic shift: floor, as Pillow
  return static_cast<uint8_t>(std::clamp<int64_t>(s, 0, 255));
}

// One pass along rows (horizontal) or columns (vertical) of an RGB picture.
RgbPicture pass(const RgbPicture& in, int64_t out_size, bool horizontal) {
  const Coefficients c = coefficients(horizontal ? in.width : in.height, out_size);
  RgbPicture out;
  out.width = horizontal ? out_size : in.width;
  out.height = horizontal ? in.height : out_size;
  out.rgb.resize(static_cast<size_t>(out.width * out.height * 3));
  for (int64_t y = 0; y < out.height; ++y)
    for (int64_t x = 0; x < out.width; ++x) {
      const int64_t o = horizontal ? x : y;
      const int32_t* k = &c.k[static_cast<size_t>(o * c.ksize)];
      const int64_t first = c.first[static_cast<size_t>(o)], count = c.count[static_cast<size_t>(o)];
      for (int64_t ch = 0; ch < 3; ++ch) {
        int64_t ss = int64_t{1} << (kPrecisionBits - 1);
        for (int64_t i = 0; i < count; ++i) {
          const int64_t sx = horizontal ? first + i : x, sy = horizontal ? y : first + i;
          ss += static_cast<int64_t>(in.rgb[static_cast<size_t>((sy * in.width + sx) * 3 + ch)]) * k[i];
        }
        out.rgb[static_cast<size_t>((y * out.width + x) * 3 + ch)] = clip8(ss);
      }
    }
  return out;
}

}  // namespace

RgbPicture resize_lanczos(const RgbPicture& p, int64_t width, int64_t height) {
  if (width < 1 || height < 1 || width > kMaxImageSide || height > kMaxImageSide)
    fail("cannot resize a picture to ", width, "x", height);
  if (p.width < 1 || p.height < 1) fail("cannot resize an empty picture");
  // Pillow accumulates in 32-bit ints: its sums stay in range because the weights sum to
  // 1 << 22 and bytes are < 256; ours are 64-bit, with the same results.
  RgbPicture out = p;
  if (width != p.width) out = pass(out, width, true);
  if (height != p.height) out = pass(out, height, false);
  return out;
}

RgbPicture crop_picture(const RgbPicture& p, int64_t x, int64_t y, int64_t width, int64_t height) {
  if (x < 0 || y < 0 || width < 1 || height < 1 || x > p.width - width || y > p.height - height)
    fail("crop ", width, "x", height, " at (", x, ", ", y, ") is outside a ", p.width, "x", p.height, " picture");
  RgbPicture out;
  out.width = width;
  out.height = height;
  out.rgb.resize(static_cast<size_t>(width * height * 3));
  for (int64_t r = 0; r < height; ++r)
    std::memcpy(&out.rgb[static_cast<size_t>(r * width * 3)], &p.rgb[static_cast<size_t>(((y + r) * p.width + x) * 3)],
                static_cast<size_t>(width * 3));
  return out;
}

}  // namespace raylight
