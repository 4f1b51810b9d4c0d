#include "models/flux/flux_references.h"

#include <algorithm>

#include "core/error.h"
#include "core/finite.h"

namespace raylight {

std::string reference_name(int index) { return "reference." + std::to_string(index); }

int reference_index(const std::string& name) {
  const std::string prefix = "reference.";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return -1;
  const std::string digits = name.substr(prefix.size());
  if (digits.size() > 1 && digits[0] == '0') return -1;  // "reference.01" is not reference 1
  int value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return -1;
    value = value * 10 + (c - '0');
    if (value >= kMaxFluxReferences) return -1;
  }
  return value;
}

std::vector<ReferencePlacement> place_references(const std::vector<Shape>& latents) {
  // The canvas the references so far cover, in latent pixels.
  int64_t height = 0, width = 0;
  std::vector<ReferencePlacement> out;
  for (const Shape& s : latents) {
    const int64_t h = s.at(s.size() - 2), w = s.at(s.size() - 1);
    int64_t row = 0, col = 0;
    if (h + height > w + width) col = width;  // a tall canvas grows to the right
    else row = height;                        // else downwards
    height = std::max(height, h + row);
    width = std::max(width, w + col);
    // Latent pixels -> tokens (ComfyUI rounds (x + 1) / 2; sides are even, so exact).
    out.push_back({row / 2, col / 2});
  }
  return out;
}

Tensor checked_reference(const std::string& name, const Tensor& given, int64_t channels) {
  Tensor t = finite_f32(given, "tensor '" + name + "'");
  if (t.ndim() == 4 && t.dim(0) == 1) t = t.reshape({t.dim(1), t.dim(2), t.dim(3)});
  if (t.ndim() != 3 || t.dim(0) != channels || t.dim(1) < 2 || t.dim(2) < 2 || t.dim(1) % 2 || t.dim(2) % 2 ||
      t.dim(1) > kMaxReferenceSide || t.dim(2) > kMaxReferenceSide)
    fail("tensor '", name, "' has shape ", shape_str(given.shape()), "; a reference latent is [", channels,
         ", height, width] (or [1, ", channels, ", height, width]) with height and width even, from 2 to ",
         kMaxReferenceSide);
  return t;
}

}  // namespace raylight
