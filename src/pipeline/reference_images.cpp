#include "pipeline/reference_images.h"

#include <cmath>

#include "core/error.h"
#include "core/finite.h"
#include "io/image/image_reader.h"
#include "io/image/lanczos_resize.h"

namespace raylight {
namespace {

bool is_reference_input(const std::string& name) { return name.rfind("reference.", 0) == 0; }

RgbPicture fitted(const DenoiserSpec& spec, const std::string& path, bool resize) {
  RgbPicture p = read_picture(path);
  const OutputSize to = spec.reference_size({p.width, p.height, 1}, resize);
  if (to.width == p.width && to.height == p.height) return p;
  if (!resize) {
    if (to.width > p.width || to.height > p.height) fail("picture ", path, " cannot be cut to ", to.width, "x", to.height);
    return crop_picture(p, (p.width - to.width) / 2, (p.height - to.height) / 2, to.width, to.height);
  }
  // comfy.utils.common_upscale(crop="center"): cut to the target's aspect ratio, then resize.
  const double old_aspect = static_cast<double>(p.width) / static_cast<double>(p.height);
  const double new_aspect = static_cast<double>(to.width) / static_cast<double>(to.height);
  int64_t x = 0, y = 0;
  if (old_aspect > new_aspect)
    x = static_cast<int64_t>(std::nearbyint((p.width - p.width * (new_aspect / old_aspect)) / 2));
  else if (old_aspect < new_aspect)
    y = static_cast<int64_t>(std::nearbyint((p.height - p.height * (old_aspect / new_aspect)) / 2));
  if (p.width - 2 * x < 1 || p.height - 2 * y < 1) fail("picture ", path, " is too narrow to fit ", to.width, "x", to.height);
  return resize_lanczos(crop_picture(p, x, y, p.width - 2 * x, p.height - 2 * y), to.width, to.height);
}

}  // namespace

int reference_slots(const DenoiserSpec& spec) {
  int n = 0;
  for (const auto& in : spec.conditioning_inputs()) n += is_reference_input(in.name);
  return n;
}

void check_reference_count(const DenoiserSpec& spec, size_t pictures) {
  const int slots = reference_slots(spec);
  if (pictures > 0 && slots == 0) fail(spec.variant(), " takes no reference images");
  if (pictures > static_cast<size_t>(slots))
    fail(spec.variant(), " takes at most ", slots, " reference images; ", pictures, " were given");
}

Tensor reference_pixels(const DenoiserSpec& spec, const std::string& path, bool resize) {
  return picture_tensor(fitted(spec, path, resize));
}

OutputSize reference_picture_size(const DenoiserSpec& spec, const std::string& path, bool resize) {
  const RgbPicture p = fitted(spec, path, resize);
  return {p.width, p.height, 1};
}

Conditioning encode_references(const DenoiserSpec& spec, LatentCodec& codec, const std::vector<std::string>& paths,
                               bool resize) {
  check_reference_count(spec, paths.size());
  Conditioning out;
  for (size_t i = 0; i < paths.size(); ++i) {
    Tensor latent = codec.encode(reference_pixels(spec, paths[i], resize));
    if (latent.ndim() == 4 && latent.dim(1) == 1) latent = latent.reshape({latent.dim(0), latent.dim(2), latent.dim(3)});
    out["reference." + std::to_string(i)] = finite_f32(latent, "the latent of picture " + paths[i]);
  }
  return out;
}

}  // namespace raylight
