#include "models/vae/flux_vae_diffusers.h"

#include <map>
#include <optional>
#include <set>
#include <vector>

#include "core/error.h"

namespace raylight {
namespace {

constexpr const char* kUpAnchor = "decoder.up_blocks.0.resnets.0.conv1.weight";

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

// "<n>.<rest>" at the front of `s`: n and rest, or nullopt.
std::optional<std::pair<int, std::string>> index_of(const std::string& s) {
  size_t i = 0;
  while (i < s.size() && i < 3 && s[i] >= '0' && s[i] <= '9') ++i;
  if (i == 0 || i >= s.size() || s[i] != '.') return std::nullopt;
  return std::make_pair(std::stoi(s.substr(0, i)), s.substr(i + 1));
}

// Resnet pieces: norm1, conv1, norm2, conv2 keep their names; the shortcut is renamed.
std::optional<std::string> resnet_piece(const std::string& rest) {
  for (const char* p : {"norm1.", "conv1.", "norm2.", "conv2."})
    if (starts_with(rest, p)) return rest;
  if (starts_with(rest, "conv_shortcut.")) return "nin_shortcut." + rest.substr(14);
  return std::nullopt;
}

std::optional<std::string> attention_piece(const std::string& rest) {
  static const std::vector<std::pair<std::string, std::string>> names = {
      {"group_norm.", "norm."}, {"to_q.", "q."},     {"to_k.", "k."},       {"to_v.", "v."},
      {"to_out.0.", "proj_out."}, {"query.", "q."}, {"key.", "k."},       {"value.", "v."},
      {"proj_attn.", "proj_out."}};
  for (const auto& [d, o] : names)
    if (starts_with(rest, d)) return o + rest.substr(d.size());
  return std::nullopt;
}

// The middle of either half: "mid_block.resnets.{0,1}" and "mid_block.attentions.0".
std::optional<std::string> mid_piece(const std::string& rest) {
  if (starts_with(rest, "resnets.")) {
    auto ix = index_of(rest.substr(8));
    if (!ix || ix->first > 1) return std::nullopt;
    auto p = resnet_piece(ix->second);
    if (!p) return std::nullopt;
    return "mid.block_" + std::to_string(ix->first + 1) + "." + *p;
  }
  if (starts_with(rest, "attentions.0.")) {
    auto p = attention_piece(rest.substr(13));
    if (!p) return std::nullopt;
    return "mid.attn_1." + *p;
  }
  return std::nullopt;
}

// The official name of one diffusers name, for a decoder of `levels` levels.
std::optional<std::string> official_name(const std::string& name, int levels) {
  const bool enc = starts_with(name, "encoder."), dec = starts_with(name, "decoder.");
  if (!enc && !dec) return std::nullopt;
  const std::string half = enc ? "encoder." : "decoder.";
  const std::string rest = name.substr(8);
  for (const char* same : {"conv_in.", "conv_out."})
    if (starts_with(rest, same)) return name;
  if (starts_with(rest, "conv_norm_out.")) return half + "norm_out." + rest.substr(14);
  if (starts_with(rest, "mid_block.")) {
    auto p = mid_piece(rest.substr(10));
    if (!p) return std::nullopt;
    return half + *p;
  }
  const std::string blocks = enc ? "down_blocks." : "up_blocks.";
  if (!starts_with(rest, blocks)) return std::nullopt;
  auto level = index_of(rest.substr(blocks.size()));
  if (!level || level->first >= levels) return std::nullopt;
  const int i = enc ? level->first : levels - 1 - level->first;
  const std::string out = half + (enc ? "down." : "up.") + std::to_string(i) + ".";
  const std::string& inner = level->second;
  if (starts_with(inner, "resnets.")) {
    auto ix = index_of(inner.substr(8));
    if (!ix) return std::nullopt;
    auto p = resnet_piece(ix->second);
    if (!p) return std::nullopt;
    return out + "block." + std::to_string(ix->first) + "." + *p;
  }
  const std::string sampler = enc ? "downsamplers.0.conv." : "upsamplers.0.conv.";
  if (starts_with(inner, sampler)) return out + (enc ? "downsample.conv." : "upsample.conv.") + inner.substr(sampler.size());
  return std::nullopt;
}

// Levels of the decoder: up_blocks.0 .. up_blocks.(n-1).
int decoder_levels(const WeightStore& w) {
  std::set<int> seen;
  for (const auto& n : w.names())
    if (starts_with(n, "decoder.up_blocks."))
      if (auto ix = index_of(n.substr(18))) seen.insert(ix->first);
  if (seen.empty()) return 0;
  return *seen.rbegin() + 1;
}

bool is_attention_matrix(const std::string& official) {
  if (official.find(".attn_1.") == std::string::npos) return false;
  for (const char* p : {".q.weight", ".k.weight", ".v.weight", ".proj_out.weight"}) {
    const std::string s = p;
    if (official.size() > s.size() && official.compare(official.size() - s.size(), s.size(), s) == 0) return true;
  }
  return false;
}

class DiffusersFluxVae final : public WeightStore {
 public:
  DiffusersFluxVae(std::unique_ptr<WeightStore> owned, const WeightStore* source, const std::string& path)
      : owned_(std::move(owned)), src_(owned_ ? owned_.get() : source) {
    const int levels = decoder_levels(*src_);
    for (const auto& name : src_->names()) {
      const auto official = official_name(name, levels);
      if (!official)
        fail(path, ": tensor ", name, " has no place in the Flux VAE (read with diffusers' AutoencoderKL names",
             name.find("quant_conv") != std::string::npos ? "; quant_conv belongs to Stable Diffusion's VAE" : "",
             ")");
      if (!to_diffusers_.emplace(*official, name).second)
        fail(path, ": tensors ", to_diffusers_.at(*official), " and ", name, " are both the Flux VAE's ", *official);
      order_.push_back(*official);
    }
  }
  bool has(const std::string& n) const override { return to_diffusers_.count(n) != 0; }
  Shape shape(const std::string& n) const override { return official_shape(n, src_->shape(at(n))); }
  DType stored_dtype(const std::string& n) const override { return src_->stored_dtype(at(n)); }
  std::vector<std::string> names() const override { return order_; }
  std::map<std::string, std::string> metadata() const override { return src_->metadata(); }
  Stored stored(const std::string& n) const override {
    Stored s = src_->stored(at(n));
    s.bytes = s.bytes.reshape(official_shape(n, s.bytes.shape()));
    return s;
  }
  void release_stored(const std::string& n) const override { src_->release_stored(at(n)); }

 private:
  const std::string& at(const std::string& n) const {
    auto it = to_diffusers_.find(n);
    if (it == to_diffusers_.end()) fail("Flux VAE (diffusers names): no tensor ", n);
    return it->second;
  }
  // The attention's linear [C, C] is the official 1x1 convolution [C, C, 1, 1].
  static Shape official_shape(const std::string& n, Shape s) {
    if (s.size() == 2 && is_attention_matrix(n)) s = {s[0], s[1], 1, 1};
    return s;
  }

  std::unique_ptr<WeightStore> owned_;
  const WeightStore* src_;
  std::map<std::string, std::string> to_diffusers_;
  std::vector<std::string> order_;
};

}  // namespace

bool is_diffusers_flux_vae(const WeightStore& weights) {
  // The mid attention's separate q (Wan's diffusers VAE fuses to_qkv; old diffusers: query).
  return weights.has(kUpAnchor) && weights.has("decoder.conv_in.weight") &&
         (weights.has("decoder.mid_block.attentions.0.to_q.weight") ||
          weights.has("decoder.mid_block.attentions.0.query.weight"));
}

std::unique_ptr<WeightStore> diffusers_flux_vae_view(std::unique_ptr<WeightStore> weights, const std::string& source) {
  return std::make_unique<DiffusersFluxVae>(std::move(weights), nullptr, source);
}

std::unique_ptr<WeightStore> diffusers_flux_vae_view(const WeightStore& weights, const std::string& source) {
  return std::make_unique<DiffusersFluxVae>(nullptr, &weights, source);
}

std::string flux_vae_diffusers_name(const std::string& official, int levels) {
  // Few enough names to search: every diffusers form that maps to `official`.
  const bool enc = starts_with(official, "encoder.");
  if (!enc && !starts_with(official, "decoder.")) return "";
  const std::string half = official.substr(0, 8);
  const std::string rest = official.substr(8);
  std::string suffix = rest.substr(rest.rfind('.') + 1);  // weight / bias
  std::vector<std::string> stems = {"conv_in", "conv_out", "conv_norm_out"};
  for (const char* m : {"mid_block.resnets.0.", "mid_block.resnets.1."})
    for (const char* p : {"norm1", "conv1", "norm2", "conv2", "conv_shortcut"}) stems.push_back(std::string(m) + p);
  for (const char* p : {"group_norm", "to_q", "to_k", "to_v", "to_out.0"})
    stems.push_back(std::string("mid_block.attentions.0.") + p);
  for (int l = 0; l < levels; ++l) {
    const std::string b = std::string(enc ? "down_blocks." : "up_blocks.") + std::to_string(l) + ".";
    for (int j = 0; j < 4; ++j)
      for (const char* p : {"norm1", "conv1", "norm2", "conv2", "conv_shortcut"})
        stems.push_back(b + "resnets." + std::to_string(j) + "." + p);
    stems.push_back(b + (enc ? "downsamplers.0.conv" : "upsamplers.0.conv"));
  }
  for (const auto& s : stems) {
    const std::string d = half + s + "." + suffix;
    if (official_name(d, levels) == official) return d;
  }
  return "";
}

}  // namespace raylight
