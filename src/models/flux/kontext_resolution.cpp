#include "models/flux/kontext_resolution.h"

#include <cmath>
#include <tuple>

#include "core/error.h"

namespace raylight {
namespace {

// The official list (width, height): black-forest-labs/flux util.py, ComfyUI nodes_flux.py.
constexpr PictureSize kResolutions[] = {
    {672, 1568}, {688, 1504}, {720, 1456}, {752, 1392}, {800, 1328},  {832, 1248},
    {880, 1184}, {944, 1104}, {1024, 1024}, {1104, 944}, {1184, 880}, {1248, 832},
    {1328, 800}, {1392, 752}, {1456, 720}, {1504, 688}, {1568, 672}};

}  // namespace

PictureSize kontext_resolution(PictureSize size) {
  if (size.width <= 0 || size.height <= 0) fail("a picture of ", size.width, "x", size.height, " has no pixels");
  const double aspect = static_cast<double>(size.width) / static_cast<double>(size.height);
  const PictureSize* best = nullptr;
  double best_diff = 0;
  for (const PictureSize& r : kResolutions) {
    const double diff = std::fabs(aspect - static_cast<double>(r.width) / static_cast<double>(r.height));
    if (!best || std::tie(diff, r.width, r.height) < std::tie(best_diff, best->width, best->height)) {
      best = &r;
      best_diff = diff;
    }
  }
  return *best;
}

PictureCrop centre_crop(PictureSize size, PictureSize target) {
  const double w = static_cast<double>(size.width), h = static_cast<double>(size.height);
  const double old_aspect = w / h;
  const double new_aspect = static_cast<double>(target.width) / static_cast<double>(target.height);
  int64_t x = 0, y = 0;
  // std::nearbyint rounds half to even under the default rounding mode, as Python's round.
  if (old_aspect > new_aspect) x = static_cast<int64_t>(std::nearbyint((w - w * (new_aspect / old_aspect)) / 2));
  else if (old_aspect < new_aspect) y = static_cast<int64_t>(std::nearbyint((h - h * (old_aspect / new_aspect)) / 2));
  return {x, y, size.width - 2 * x, size.height - 2 * y};
}

}  // namespace raylight
