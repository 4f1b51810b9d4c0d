#include "models/wan/wan_config.h"

#include <set>
#include <sstream>

#include "core/error.h"

namespace raylight {

std::string WanConfig::variant() const {
  const char* task = first_last_frame ? "FLF2V" : image_to_video() || takes_y() ? "I2V" : "T2V";
  std::ostringstream os;
  if (ti2v()) {
    os << "Wan2.2 TI2V ";
    if (dim == 3072 && num_layers == 30 && ffn_dim == 14336) os << "5B";
    else os << "custom (dim " << dim << ", " << num_layers << " layers)";
    return os.str();
  }
  os << "Wan2.1 " << task << " ";
  if (dim == 1536 && num_layers == 30 && ffn_dim == 8960 && !image_to_video()) os << "1.3B";
  else if (dim == 5120 && num_layers == 40 && ffn_dim == 13824) os << "14B";
  else os << "custom (dim " << dim << ", " << num_layers << " layers)";
  return os.str();
}

int64_t WanConfig::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, shape] : wan_expected_tensors(*this)) n += shape_numel(shape);
  return n;
}

std::vector<std::pair<std::string, Shape>> wan_expected_tensors(const WanConfig& c) {
  const int64_t d = c.dim;
  const int64_t out = c.out_dim * c.patch.volume();
  std::vector<std::pair<std::string, Shape>> t = {
      {"patch_embedding.weight", {d, c.in_dim, c.patch.t, c.patch.h, c.patch.w}},
      {"patch_embedding.bias", {d}},
      {"text_embedding.0.weight", {d, c.text_dim}}, {"text_embedding.0.bias", {d}},
      {"text_embedding.2.weight", {d, d}},          {"text_embedding.2.bias", {d}},
      {"time_embedding.0.weight", {d, c.freq_dim}}, {"time_embedding.0.bias", {d}},
      {"time_embedding.2.weight", {d, d}},          {"time_embedding.2.bias", {d}},
      {"time_projection.1.weight", {6 * d, d}},     {"time_projection.1.bias", {6 * d}},
      {"head.head.weight", {out, d}},               {"head.head.bias", {out}},
      {"head.modulation", {1, 2, d}},
  };
  if (c.image_to_video()) {
    const int64_t k = c.clip_dim;
    for (auto [name, shape] : std::vector<std::pair<std::string, Shape>>{
             {"img_emb.proj.0.weight", {k}}, {"img_emb.proj.0.bias", {k}},
             {"img_emb.proj.1.weight", {k, k}}, {"img_emb.proj.1.bias", {k}},
             {"img_emb.proj.3.weight", {d, k}}, {"img_emb.proj.3.bias", {d}},
             {"img_emb.proj.4.weight", {d}}, {"img_emb.proj.4.bias", {d}}})
      t.emplace_back(name, shape);
    if (c.first_last_frame) t.emplace_back("img_emb.emb_pos", Shape{1, c.image_tokens, k});
  }
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    std::vector<std::string> attn_linears = {"q", "k", "v", "o"};
    for (const char* attn : {"self_attn.", "cross_attn."}) {
      std::vector<std::string> linears = attn_linears;
      if (std::string(attn) == "cross_attn." && c.image_to_video()) {
        linears.push_back("k_img");
        linears.push_back("v_img");
      }
      for (const auto& l : linears) {
        t.push_back({b + attn + l + ".weight", {d, d}});
        t.push_back({b + attn + l + ".bias", {d}});
      }
      t.push_back({b + attn + "norm_q.weight", {d}});
      t.push_back({b + attn + "norm_k.weight", {d}});
      if (std::string(attn) == "cross_attn." && c.image_to_video())
        t.push_back({b + attn + "norm_k_img.weight", {d}});
    }
    t.push_back({b + "norm3.weight", {d}});
    t.push_back({b + "norm3.bias", {d}});
    t.push_back({b + "ffn.0.weight", {c.ffn_dim, d}});
    t.push_back({b + "ffn.0.bias", {c.ffn_dim}});
    t.push_back({b + "ffn.2.weight", {d, c.ffn_dim}});
    t.push_back({b + "ffn.2.bias", {d}});
    t.push_back({b + "modulation", {1, 6, d}});
  }
  return t;
}

bool looks_like_wan(const WeightStore& w) {
  return w.has("patch_embedding.weight") && w.has("time_projection.1.weight") &&
         w.has("blocks.0.self_attn.q.weight");
}

WanConfig detect_wan_config(const WeightStore& w) {
  auto need = [&](const std::string& name, size_t ndim) {
    if (!w.has(name)) fail("not a Wan 2.1 DiT checkpoint: tensor ", name, " is missing");
    Shape s = w.shape(name);
    if (s.size() != ndim)
      fail("Wan checkpoint tensor ", name, " has shape ", shape_str(s), ", expected ", ndim,
           " dimensions");
    return s;
  };
  WanConfig c;
  Shape patch = need("patch_embedding.weight", 5);
  c.dim = patch[0];
  c.in_dim = patch[1];
  for (int i = 2; i < 5; ++i)
    if (patch[i] < 1 || patch[i] > 64)
      fail("Wan checkpoint patch_embedding.weight ", shape_str(patch), " has a patch size of ",
           patch[i], " (1 to 64 expected)");
  c.patch = {static_cast<int>(patch[2]), static_cast<int>(patch[3]), static_cast<int>(patch[4])};
  c.text_dim = need("text_embedding.0.weight", 2)[1];
  c.freq_dim = need("time_embedding.0.weight", 2)[1];
  c.ffn_dim = need("blocks.0.ffn.0.weight", 2)[0];
  c.out_dim = need("head.head.weight", 2)[0] / c.patch.volume();
  if (w.has("img_emb.proj.1.weight")) c.clip_dim = need("img_emb.proj.1.weight", 2)[1];

  std::set<int64_t> blocks;
  for (const auto& name : w.names()) {
    if (name.rfind("blocks.", 0) != 0) continue;
    size_t dot = name.find('.', 7);
    try {
      blocks.insert(std::stoll(name.substr(7, dot - 7)));
    } catch (const std::exception&) {
      fail("Wan checkpoint has a malformed block tensor name: ", name);
    }
  }
  c.num_layers = static_cast<int64_t>(blocks.size());
  if (c.num_layers == 0 || *blocks.rbegin() != c.num_layers - 1)
    fail("Wan checkpoint blocks are not numbered 0..N-1 (found ", blocks.size(), " blocks)");

  // Sizes the forward divides by or builds tables from: refused here, with the tensor that
  // gave them, rather than as an internal error (or a crash) in the first forward.
  auto positive = [&](int64_t v, const char* what, const char* tensor) {
    if (v <= 0) fail("Wan checkpoint has ", what, " ", v, " (from ", tensor, "): not a usable model");
  };
  positive(c.dim, "model width (dim)", "patch_embedding.weight");
  positive(c.in_dim, "latent channels", "patch_embedding.weight");
  positive(c.text_dim, "text width", "text_embedding.0.weight");
  positive(c.freq_dim, "time embedding width", "time_embedding.0.weight");
  positive(c.ffn_dim, "FFN width", "blocks.0.ffn.0.weight");
  positive(c.out_dim, "output channels", "head.head.weight");
  if (w.shape("head.head.weight")[0] % c.patch.volume() != 0)
    fail("Wan checkpoint head.head.weight has ", w.shape("head.head.weight")[0],
         " rows, not a multiple of the patch volume ", c.patch.volume());
  if (c.freq_dim % 2 != 0)
    fail("Wan checkpoint time embedding width ", c.freq_dim, " (time_embedding.0.weight) is odd");
  if (w.has("img_emb.proj.1.weight")) positive(c.clip_dim, "image feature width", "img_emb.proj.1.weight");
  // FLF2V: the positions of the first and the last frame's CLIP tokens, an even count.
  if (w.has("img_emb.emb_pos")) {
    const Shape pos = need("img_emb.emb_pos", 3);
    if (!c.image_to_video() || pos[1] < 2 || pos[1] % 2 != 0 || pos[1] > 8192)
      fail("Wan checkpoint img_emb.emb_pos has shape ", shape_str(pos),
           "; expected [1, 2 x image tokens, image feature width] beside img_emb.proj");
    c.first_last_frame = true;
    c.image_tokens = pos[1];
  }

  auto meta = w.metadata();
  auto it = meta.find("raylight.num_heads");
  if (it != meta.end()) {
    const std::string& v = it->second;
    size_t used = 0;
    try {
      c.num_heads = std::stoll(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != v.size())
      fail("Wan checkpoint metadata raylight.num_heads is not a whole number: '", v, "'");
  } else {
    c.num_heads = c.dim / 128;
  }
  if (c.num_heads <= 0 || c.dim % c.num_heads != 0)
    fail("Wan checkpoint dim ", c.dim, " cannot be split into ", c.num_heads, " heads");
  // 3-D RoPE splits each head into frame, height and width parts of even size.
  if (c.head_dim() % 2 != 0 || c.head_dim() < 6)
    fail("Wan checkpoint dim ", c.dim, " in ", c.num_heads, " heads gives a head size of ",
         c.head_dim(), "; the model's 3-D rotary embedding needs an even head size of at least 6");

  for (const auto& [name, shape] : wan_expected_tensors(c)) {
    if (!w.has(name))
      fail("Wan checkpoint (", c.variant(), ") is missing tensor ", name);
    if (w.shape(name) != shape)
      fail("Wan checkpoint (", c.variant(), ") tensor ", name, " has shape ",
           shape_str(w.shape(name)), ", expected ", shape_str(shape));
  }
  return c;
}

}  // namespace raylight
