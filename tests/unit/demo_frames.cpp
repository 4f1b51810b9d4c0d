// The measure of demo_frames.h. Colours and texture rule copied from training/demo/scenes.py
// (the renderer is the specification of what a prompt should look like).
#include "demo_frames.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <sstream>

namespace raylight::test {
namespace {

using Rgb = std::array<double, 3>;

struct Colour {
  const char* name;
  Rgb rgb;
};
constexpr Colour kColours[] = {{"red", {0.90, 0.10, 0.10}},    {"green", {0.10, 0.70, 0.20}},
                               {"blue", {0.15, 0.30, 0.95}},   {"yellow", {0.95, 0.88, 0.10}},
                               {"orange", {1.00, 0.55, 0.05}}, {"purple", {0.55, 0.20, 0.80}},
                               {"white", {0.96, 0.96, 0.96}},  {"black", {0.06, 0.06, 0.06}}};
constexpr int kCount = 8;
constexpr double kGradientCost = 0.005;  // an exact look wins a tie with a gradient's
constexpr double kObjectRadius = 0.15;

int colour_index(const std::string& name) {
  for (int i = 0; i < kCount; ++i)
    if (name == kColours[i].name) return i;
  return -1;
}

double dist2(const Rgb& a, const Rgb& b) {
  double d = 0;
  for (int k = 0; k < 3; ++k) d += (a[k] - b[k]) * (a[k] - b[k]);
  return d;
}

// scenes.py's _texture_colour.
Rgb texture_of(const Rgb& c) {
  const double luma = 0.3 * c[0] + 0.59 * c[1] + 0.11 * c[2];
  Rgb t;
  for (int k = 0; k < 3; ++k) t[k] = luma > 0.55 ? c[k] * 0.55 : c[k] + 0.45 * (1 - c[k]);
  return t;
}

// Distance from a pixel to the nearest look of colour c.
double look_dist(const Rgb& px, int c) {
  const Rgb& b = kColours[c].rgb;
  double dot = 0, bb = 0;
  for (int k = 0; k < 3; ++k) dot += px[k] * b[k], bb += b[k] * b[k];
  const double s = std::clamp(dot / bb, 0.25, 1.0);
  const Rgb g = {s * b[0], s * b[1], s * b[2]};
  return std::min({dist2(px, b), dist2(px, texture_of(b)), dist2(px, g) + kGradientCost});
}

}  // namespace

const std::vector<std::string>& demo_colour_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& c : kColours) n.push_back(c.name);
    return n;
  }();
  return names;
}

DemoPrompt parse_demo_prompt(const std::string& prompt) {
  std::istringstream in(prompt);
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  DemoPrompt p;
  if (w.size() < 8) return p;
  p.object = w[1];
  p.shape = w[2];
  size_t i = 3;
  p.motion = w[i] == "moving" ? w[i] + " " + w[i + 1] : w[i];
  i += w[i] == "moving" ? 2 : 1;
  if (i + 3 > w.size() || w[i] != "on") return {};
  p.background = w[i + 2];
  if (i + 4 < w.size()) p.style = w[i + 3];
  return p;
}

ClipMeasure measure_clip(const Tensor& frames, const DemoPrompt& prompt) {
  const int o = colour_index(prompt.object), b = colour_index(prompt.background);
  const int64_t F = frames.dim(1), H = frames.dim(2), W = frames.dim(3), plane = H * W;
  const float* p = frames.f32();
  ClipMeasure m;
  std::vector<int64_t> counts(kCount, 0);
  int64_t object_pixels = 0;
  for (int64_t f = 0; f < F; ++f) {
    double sx = 0, sy = 0, n = 0;
    for (int64_t i = 0; i < plane; ++i) {
      Rgb px;
      for (int c = 0; c < 3; ++c) px[c] = (p[(c * F + f) * plane + i] + 1.0) / 2.0;
      std::array<double, kCount> d;
      for (int c = 0; c < kCount; ++c) d[c] = look_dist(px, c);
      const int best = static_cast<int>(std::min_element(d.begin(), d.end()) - d.begin());
      ++counts[best];
      if (o >= 0 && b >= 0 && best == o) {
        const double d_o = dist2(px, kColours[o].rgb);
        if (d_o < kObjectRadius && d_o < d[b]) {
          sx += static_cast<double>(i % W);
          sy += static_cast<double>(i / W);
          n += 1;
        }
      }
    }
    object_pixels += static_cast<int64_t>(n);
    m.area.push_back(n / static_cast<double>(plane));
    m.centre_x.push_back(n ? sx / n : NAN);
    m.centre_y.push_back(n ? sy / n : NAN);
  }
  const double all = static_cast<double>(F * plane);
  for (int c = 0; c < kCount; ++c) m.colour_share.push_back(static_cast<double>(counts[c]) / all);
  if (b >= 0) {
    for (int c = 0; c < kCount; ++c) m.background_rank += counts[c] > counts[b];
    m.background_share = m.colour_share[b];
  }
  m.object_share = static_cast<double>(object_pixels) / all;
  return m;
}

double mean_area(const ClipMeasure& m, size_t first, size_t n) {
  double s = 0;
  for (size_t i = first; i < first + n && i < m.area.size(); ++i) s += m.area[i];
  return n ? s / static_cast<double>(n) : 0;
}

double displacement(const ClipMeasure& m, bool along_x) {
  const std::vector<double>& c = along_x ? m.centre_x : m.centre_y;
  double n = 0, st = 0, sc = 0, stt = 0, stc = 0;
  for (size_t f = 0; f < c.size(); ++f) {
    if (m.area[f] < 0.002 || std::isnan(c[f])) continue;
    const double t = static_cast<double>(f);
    n += 1, st += t, sc += c[f], stt += t * t, stc += t * c[f];
  }
  if (n < 3) return NAN;
  const double slope = (n * stc - st * sc) / (n * stt - st * st);
  return slope * static_cast<double>(c.size() - 1);
}

}  // namespace raylight::test
