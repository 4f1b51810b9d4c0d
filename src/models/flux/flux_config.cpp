#include "models/flux/flux_config.h"

#include <set>
#include <sstream>

#include "core/error.h"

namespace raylight {

RopeAxes FluxConfig::rope_axes() const {
  const int d = static_cast<int>(head_dim());
  const int first = d / 8 / 2 * 2;
  return {first, (d - first) / 2, (d - first) / 2};
}

std::string FluxConfig::variant() const {
  const bool full = hidden == 3072 && depth == 19 && depth_single == 38 && mlp_hidden == 12288 &&
                    context_in == 4096 && vec_in == 768 && in_channels == 64;
  std::ostringstream os;
  os << "Flux.1 ";
  if (full) os << (guidance_embed ? "dev" : "schnell");
  else os << (guidance_embed ? "dev" : "schnell") << "-like custom (hidden " << hidden << ", " << depth << "+"
          << depth_single << " blocks)";
  return os.str();
}

std::vector<std::pair<std::string, Shape>> flux_expected_tensors(const FluxConfig& c) {
  const int64_t d = c.hidden, hd = c.head_dim();
  std::vector<std::pair<std::string, Shape>> t;
  auto linear = [&](const std::string& name, int64_t in, int64_t out) {
    t.push_back({name + ".weight", {out, in}});
    t.push_back({name + ".bias", {out}});
  };
  auto mlp_embedder = [&](const std::string& name, int64_t in) {
    linear(name + ".in_layer", in, d);
    linear(name + ".out_layer", d, d);
  };
  auto qk_norm = [&](const std::string& name) {
    t.push_back({name + ".query_norm.scale", {hd}});
    t.push_back({name + ".key_norm.scale", {hd}});
  };
  linear("img_in", c.in_channels, d);
  mlp_embedder("time_in", 256);
  mlp_embedder("vector_in", c.vec_in);
  if (c.guidance_embed) mlp_embedder("guidance_in", 256);
  linear("txt_in", c.context_in, d);
  for (int64_t i = 0; i < c.depth; ++i) {
    const std::string b = "double_blocks." + std::to_string(i) + ".";
    for (const char* s : {"img", "txt"}) {
      const std::string p = b + s;
      linear(p + "_mod.lin", d, 6 * d);
      linear(p + "_attn.qkv", d, 3 * d);
      qk_norm(p + "_attn.norm");
      linear(p + "_attn.proj", d, d);
      linear(p + "_mlp.0", d, c.mlp_hidden);
      linear(p + "_mlp.2", c.mlp_hidden, d);
    }
  }
  for (int64_t i = 0; i < c.depth_single; ++i) {
    const std::string b = "single_blocks." + std::to_string(i) + ".";
    linear(b + "linear1", d, 3 * d + c.mlp_hidden);
    linear(b + "linear2", d + c.mlp_hidden, d);
    qk_norm(b + "norm");
    linear(b + "modulation.lin", d, 3 * d);
  }
  linear("final_layer.linear", d, c.out_channels);
  linear("final_layer.adaLN_modulation.1", d, 2 * d);
  return t;
}

bool looks_like_flux(const WeightStore& w) {
  return w.has("img_in.weight") && w.has("txt_in.weight") && w.has("double_blocks.0.img_attn.qkv.weight");
}

namespace {

// The numbers N of names "<prefix>N.<rest>", which must be 0..count-1.
int64_t count_blocks(const WeightStore& w, const std::string& prefix) {
  std::set<int64_t> seen;
  for (const auto& name : w.names()) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const size_t dot = name.find('.', prefix.size());
    try {
      seen.insert(std::stoll(name.substr(prefix.size(), dot - prefix.size())));
    } catch (const std::exception&) {
      fail("Flux checkpoint has a malformed block tensor name: ", name);
    }
  }
  if (!seen.empty() && (*seen.begin() != 0 || *seen.rbegin() != static_cast<int64_t>(seen.size()) - 1))
    fail("Flux checkpoint ", prefix, "N blocks are not numbered 0..N-1 (found ", seen.size(), ")");
  return static_cast<int64_t>(seen.size());
}

}  // namespace

FluxConfig detect_flux_config(const WeightStore& w) {
  auto need = [&](const std::string& name, size_t ndim) {
    if (!w.has(name)) fail("not a Flux DiT checkpoint: tensor ", name, " is missing");
    Shape s = w.shape(name);
    if (s.size() != ndim)
      fail("Flux checkpoint tensor ", name, " has shape ", shape_str(s), ", expected ", ndim, " dimensions");
    return s;
  };
  FluxConfig c;
  const Shape img_in = need("img_in.weight", 2);
  c.hidden = img_in[0];
  c.in_channels = img_in[1];
  c.context_in = need("txt_in.weight", 2)[1];
  c.vec_in = need("vector_in.in_layer.weight", 2)[1];
  c.mlp_hidden = need("double_blocks.0.img_mlp.0.weight", 2)[0];
  c.out_channels = need("final_layer.linear.weight", 2)[0];
  c.guidance_embed = w.has("guidance_in.in_layer.weight");
  c.depth = count_blocks(w, "double_blocks.");
  c.depth_single = count_blocks(w, "single_blocks.");
  if (c.in_channels % 4 != 0 || c.out_channels != c.in_channels)
    fail("Flux checkpoint: img_in takes ", c.in_channels, " and final_layer makes ", c.out_channels,
         " features; expected equal multiples of 4 (2x2 patches)");
  c.latent_channels = c.in_channels / 4;
  auto meta = w.metadata();
  auto it = meta.find("raylight.num_heads");
  if (it != meta.end()) {
    try {
      c.num_heads = std::stoll(it->second);
    } catch (const std::exception&) {
      fail("metadata raylight.num_heads is not a number: ", it->second);
    }
  } else {
    c.num_heads = c.hidden / 128;
  }
  if (c.num_heads <= 0 || c.hidden % c.num_heads != 0 || c.head_dim() % 8 != 0)
    fail("Flux checkpoint width ", c.hidden, " cannot be split into ", c.num_heads, " heads of a multiple of 8");
  for (const auto& [name, shape] : flux_expected_tensors(c)) {
    if (!w.has(name)) fail("Flux checkpoint (", c.variant(), ") is missing tensor ", name);
    if (w.shape(name) != shape)
      fail("Flux checkpoint (", c.variant(), ") tensor ", name, " has shape ", shape_str(w.shape(name)), ", expected ",
           shape_str(shape));
  }
  return c;
}

}  // namespace raylight
