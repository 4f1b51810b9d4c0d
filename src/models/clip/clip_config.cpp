#include "models/clip/clip_config.h"

#include <cmath>
#include <optional>
#include <set>

#include "core/error.h"

namespace raylight {
namespace {

constexpr const char* kTextAnchor = "text_model.final_layer_norm.weight";
constexpr const char* kVisionAnchor = "vision_model.post_layernorm.weight";

bool ends_with(const std::string& s, const std::string& x) {
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

const char* anchor(ClipTower t) { return t == ClipTower::Text ? kTextAnchor : kVisionAnchor; }
const char* tower_name(ClipTower t) { return t == ClipTower::Text ? "CLIP text encoder" : "CLIP vision encoder"; }

// "<outer>text_model." for the first anchor found.
std::optional<std::string> find_prefix(const WeightStore& w, ClipTower tower) {
  const std::string a = anchor(tower);
  const std::string inner = tower == ClipTower::Text ? "text_model." : "vision_model.";
  for (const std::string& name : w.names())
    if (ends_with(name, a)) return name.substr(0, name.size() - a.size()) + inner;
  return std::nullopt;
}

int64_t heads_for(const WeightStore& w, ClipTower tower, int64_t width) {
  const auto meta = w.metadata();
  auto it = meta.find("raylight.clip_heads");
  if (it != meta.end()) {
    int64_t h = 0;
    try {
      h = std::stoll(it->second);
    } catch (const std::exception&) {
      fail("metadata raylight.clip_heads is '", it->second, "', not a number");
    }
    if (h <= 0 || width % h != 0)
      fail("metadata raylight.clip_heads is ", h, ", which does not divide the width ", width);
    return h;
  }
  if (tower == ClipTower::Vision && (width == 1280 || width == 1664)) return 16;
  if (width % 64 != 0) fail(tower_name(tower), " width ", width, " is not a multiple of 64 (heads of 64)");
  return width / 64;
}

}  // namespace

std::string ClipConfig::layer(int64_t index, const std::string& rest) const {
  return prefix + "encoder.layers." + std::to_string(index) + "." + rest;
}

std::string ClipConfig::variant() const {
  if (tower == ClipTower::Text) {
    if (width == 768 && layers == 12 && heads == 12 && mlp == 3072 && vocab == 49408 && positions == 77)
      return "CLIP-L";
    if (width == 1280 && layers == 32 && heads == 20 && mlp == 5120 && vocab == 49408 && positions == 77)
      return "CLIP-G";
    return "CLIP text custom (width " + std::to_string(width) + ", " + std::to_string(layers) + " layers)";
  }
  if (width == 1280 && layers == 32 && heads == 16 && mlp == 5120 && patch == 14 && image_size == 224)
    return "CLIP ViT-H/14";
  if (width == 1024 && layers == 24 && heads == 16 && mlp == 4096 && patch == 14 && image_size == 224)
    return "CLIP ViT-L/14";
  return "CLIP vision custom (width " + std::to_string(width) + ", " + std::to_string(layers) + " layers, patch " +
         std::to_string(patch) + ", image " + std::to_string(image_size) + ")";
}

ClipConfig clip_l_text_config() {
  ClipConfig c;
  c.tower = ClipTower::Text;
  c.prefix = "text_model.";
  c.width = 768;
  c.layers = 12;
  c.heads = 12;
  c.mlp = 3072;
  c.positions = 77;
  c.vocab = 49408;
  c.quick_gelu = true;
  return c;
}

ClipConfig clip_vit_h_config() {
  ClipConfig c;
  c.tower = ClipTower::Vision;
  c.prefix = "vision_model.";
  c.width = 1280;
  c.layers = 32;
  c.heads = 16;
  c.mlp = 5120;
  c.patch = 14;
  c.image_size = 224;
  c.positions = 257;
  return c;
}

std::vector<std::pair<std::string, Shape>> clip_expected_tensors(const ClipConfig& c) {
  const int64_t d = c.width;
  std::vector<std::pair<std::string, Shape>> t;
  if (c.tower == ClipTower::Text) {
    t.push_back({c.name("embeddings.token_embedding.weight"), {c.vocab, d}});
    t.push_back({c.name("embeddings.position_embedding.weight"), {c.positions, d}});
  } else {
    t.push_back({c.name("embeddings.patch_embedding.weight"), {d, c.channels, c.patch, c.patch}});
    t.push_back({c.name("embeddings.class_embedding"), {d}});
    t.push_back({c.name("embeddings.position_embedding.weight"), {c.positions, d}});
    t.push_back({c.name("pre_layrnorm.weight"), {d}});
    t.push_back({c.name("pre_layrnorm.bias"), {d}});
  }
  for (int64_t i = 0; i < c.layers; ++i) {
    for (const char* p : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      t.push_back({c.layer(i, std::string("self_attn.") + p + ".weight"), {d, d}});
      t.push_back({c.layer(i, std::string("self_attn.") + p + ".bias"), {d}});
    }
    for (const char* n : {"layer_norm1", "layer_norm2"}) {
      t.push_back({c.layer(i, std::string(n) + ".weight"), {d}});
      t.push_back({c.layer(i, std::string(n) + ".bias"), {d}});
    }
    t.push_back({c.layer(i, "mlp.fc1.weight"), {c.mlp, d}});
    t.push_back({c.layer(i, "mlp.fc1.bias"), {c.mlp}});
    t.push_back({c.layer(i, "mlp.fc2.weight"), {d, c.mlp}});
    t.push_back({c.layer(i, "mlp.fc2.bias"), {d}});
  }
  const std::string final_norm = c.tower == ClipTower::Text ? "final_layer_norm" : "post_layernorm";
  t.push_back({c.name(final_norm + ".weight"), {d}});
  t.push_back({c.name(final_norm + ".bias"), {d}});
  return t;
}

bool looks_like_clip_text(const WeightStore& w) { return find_prefix(w, ClipTower::Text).has_value(); }
bool looks_like_clip_vision(const WeightStore& w) { return find_prefix(w, ClipTower::Vision).has_value(); }

ClipConfig detect_clip_config(const WeightStore& w, ClipTower tower) {
  const char* what = tower_name(tower);
  std::optional<std::string> prefix = find_prefix(w, tower);
  if (!prefix) fail("not a ", what, ": no tensor named ", anchor(tower));
  ClipConfig c;
  c.tower = tower;
  c.prefix = *prefix;
  auto need = [&](const std::string& name, size_t ndim) {
    if (!w.has(name)) fail(what, " tensor ", name, " is missing");
    Shape s = w.shape(name);
    if (s.size() != ndim)
      fail(what, " tensor ", name, " has shape ", shape_str(s), ", expected ", ndim, " dimensions");
    for (int64_t v : s)
      if (v <= 0) fail(what, " tensor ", name, " has shape ", shape_str(s), ": an empty dimension");
    return s;
  };
  const Shape pos = need(c.name("embeddings.position_embedding.weight"), 2);
  c.positions = pos[0];
  c.width = pos[1];
  if (tower == ClipTower::Text) {
    c.vocab = need(c.name("embeddings.token_embedding.weight"), 2)[0];
  } else {
    const Shape patch = need(c.name("embeddings.patch_embedding.weight"), 4);
    c.channels = patch[1];
    c.patch = patch[2];
    // tokens = (image / patch)^2 + 1: the image side from the position count.
    int64_t side = static_cast<int64_t>(std::sqrt(static_cast<double>(c.positions - 1)));
    while (side > 0 && side * side > c.positions - 1) --side;
    while ((side + 1) * (side + 1) <= c.positions - 1) ++side;
    if (side == 0 || side * side != c.positions - 1)
      fail(what, " tensor ", c.name("embeddings.position_embedding.weight"), " has ", c.positions,
           " positions, not a square number of patches plus the class token");
    if (side > (int64_t{1} << 20) / c.patch) fail(what, ": image side ", side, " x ", c.patch, " is too large");
    c.image_size = side * c.patch;
    if (c.channels != 3) fail(what, " tensor ", c.name("embeddings.patch_embedding.weight"), " has ", c.channels,
                              " input channels; expected 3 (RGB)");
    const std::string proj = (c.prefix.substr(0, c.prefix.size() - std::string("vision_model.").size())) +
                             "visual_projection.weight";
    if (w.has(proj)) {
      const Shape s = need(proj, 2);
      if (s[1] != c.width)
        fail(what, " tensor ", proj, " has shape ", shape_str(s), ", expected [N, ", c.width, "]");
      c.projection = s[0];
      c.projection_name = proj;
    }
  }
  c.mlp = need(c.layer(0, "mlp.fc1.weight"), 2)[0];
  c.heads = heads_for(w, tower, c.width);
  c.quick_gelu = tower == ClipTower::Text && c.width != 1280;

  // Layers: the indices present, which must be 0..N-1.
  const std::string layers = c.prefix + "encoder.layers.";
  std::set<int64_t> seen;
  for (const std::string& name : w.names()) {
    if (name.rfind(layers, 0) != 0) continue;
    const size_t dot = name.find('.', layers.size());
    const std::string index = name.substr(layers.size(), dot == std::string::npos ? std::string::npos : dot - layers.size());
    if (index.empty() || index.size() > 6 || index.find_first_not_of("0123456789") != std::string::npos)
      fail(what, " has a malformed layer tensor name: ", name);
    seen.insert(std::stoll(index));
  }
  c.layers = static_cast<int64_t>(seen.size());
  if (c.layers == 0 || *seen.rbegin() != c.layers - 1)
    fail(what, " layers are not numbered 0..N-1 (found ", seen.size(), " layers)");
  if (tower == ClipTower::Vision && c.layers < 2)
    fail(what, " has ", c.layers, " layer; the penultimate layer's output needs at least 2");

  for (const auto& [name, shape] : clip_expected_tensors(c)) {
    if (!w.has(name)) fail(what, " (", c.variant(), ") is missing tensor ", name);
    if (w.shape(name) != shape)
      fail(what, " (", c.variant(), ") tensor ", name, " has shape ", shape_str(w.shape(name)), ", expected ",
           shape_str(shape));
  }
  return c;
}

}  // namespace raylight
