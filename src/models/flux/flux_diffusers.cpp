#include "models/flux/flux_diffusers.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "core/error.h"
#include "models/flux/flux_config.h"

namespace raylight {
namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
bool is_fp8(DType t) { return t == DType::F8E4M3 || t == DType::F8E5M2; }

// Why a tensor has no place, where a known quantised export explains it.
std::string quantised_hint(const std::string& name) {
  for (const char* q : {".absmax", ".quant_map", ".quant_state", ".nested_absmax", ".SCB"})
    if (name.find(q) != std::string::npos) return "; bitsandbytes' quantised weights are not read: use a bf16 or fp8 export";
  for (const char* q : {"._data", "._scale", ".input_scale", ".output_scale"})
    if (name.find(q) != std::string::npos) return "; optimum-quanto's quantised weights are not read: use a bf16 or fp8 export";
  return "";
}

// One official tensor: which diffusers tensors make it, in row order.
struct Rule {
  std::string official;
  std::vector<std::string> parts;
  bool swap_halves = false;  // norm_out.linear: [scale, shift] -> [shift, scale]
};

// Every rule of a model with `depth` double and `single` single blocks, weights and biases.
std::vector<Rule> rules(int64_t depth, int64_t single) {
  std::vector<Rule> out;
  // A linear (weight and bias) or a norm (diffusers' .weight is the official .scale).
  auto linear = [&](const std::string& official, std::vector<std::string> parts, bool swap = false) {
    for (const char* s : {".weight", ".bias"}) {
      Rule r{official + s, {}, swap};
      for (const auto& p : parts) r.parts.push_back(p + s);
      out.push_back(std::move(r));
    }
  };
  auto norm = [&](const std::string& official, const std::string& part) {
    out.push_back({official + ".scale", {part + ".weight"}});
  };
  linear("img_in", {"x_embedder"});
  linear("time_in.in_layer", {"time_text_embed.timestep_embedder.linear_1"});
  linear("time_in.out_layer", {"time_text_embed.timestep_embedder.linear_2"});
  linear("vector_in.in_layer", {"time_text_embed.text_embedder.linear_1"});
  linear("vector_in.out_layer", {"time_text_embed.text_embedder.linear_2"});
  linear("guidance_in.in_layer", {"time_text_embed.guidance_embedder.linear_1"});
  linear("guidance_in.out_layer", {"time_text_embed.guidance_embedder.linear_2"});
  linear("txt_in", {"context_embedder"});
  for (int64_t i = 0; i < depth; ++i) {
    const std::string o = "double_blocks." + std::to_string(i) + ".";
    const std::string d = "transformer_blocks." + std::to_string(i) + ".";
    linear(o + "img_mod.lin", {d + "norm1.linear"});
    linear(o + "txt_mod.lin", {d + "norm1_context.linear"});
    linear(o + "img_attn.qkv", {d + "attn.to_q", d + "attn.to_k", d + "attn.to_v"});
    linear(o + "txt_attn.qkv", {d + "attn.add_q_proj", d + "attn.add_k_proj", d + "attn.add_v_proj"});
    norm(o + "img_attn.norm.query_norm", d + "attn.norm_q");
    norm(o + "img_attn.norm.key_norm", d + "attn.norm_k");
    norm(o + "txt_attn.norm.query_norm", d + "attn.norm_added_q");
    norm(o + "txt_attn.norm.key_norm", d + "attn.norm_added_k");
    linear(o + "img_attn.proj", {d + "attn.to_out.0"});
    linear(o + "txt_attn.proj", {d + "attn.to_add_out"});
    linear(o + "img_mlp.0", {d + "ff.net.0.proj"});
    linear(o + "img_mlp.2", {d + "ff.net.2"});
    linear(o + "txt_mlp.0", {d + "ff_context.net.0.proj"});
    linear(o + "txt_mlp.2", {d + "ff_context.net.2"});
  }
  for (int64_t i = 0; i < single; ++i) {
    const std::string o = "single_blocks." + std::to_string(i) + ".";
    const std::string d = "single_transformer_blocks." + std::to_string(i) + ".";
    linear(o + "linear1", {d + "attn.to_q", d + "attn.to_k", d + "attn.to_v", d + "proj_mlp"});
    linear(o + "linear2", {d + "proj_out"});
    norm(o + "norm.query_norm", d + "attn.norm_q");
    norm(o + "norm.key_norm", d + "attn.norm_k");
    linear(o + "modulation.lin", {d + "norm.linear"});
  }
  linear("final_layer.linear", {"proj_out"});
  linear("final_layer.adaLN_modulation.1", {"norm_out.linear"}, true);
  return out;
}

// 1 + the largest N of names "<prefix>N.", 0 when there are none (gaps are the config's
// check to report, under the official names).
int64_t block_count(const std::vector<std::string>& names, const std::string& prefix) {
  int64_t n = 0;
  for (const auto& name : names) {
    if (!starts_with(name, prefix)) continue;
    size_t i = prefix.size(), j = i;
    while (j < name.size() && j - i < 6 && name[j] >= '0' && name[j] <= '9') ++j;
    if (j == i || j >= name.size() || name[j] != '.') continue;  // refused below as having no place
    n = std::max<int64_t>(n, std::stoll(name.substr(i, j - i)) + 1);
  }
  return n;
}

// A run of rows of one file tensor.
struct Piece {
  std::string name;
  int64_t first_row = 0, rows = 0;
  DType dtype = DType::F32;
  float scale = 1.0f;
};

struct Fused {
  std::vector<Piece> pieces;
  Shape shape;
  DType dtype = DType::F32;
  float scale = 1.0f;
  bool widened = false;     // pieces converted to dtype, each with its own scale
  int64_t row_elems = 1;    // elements per row
};

class DiffusersFlux final : public WeightStore {
 public:
  DiffusersFlux(std::unique_ptr<WeightStore> owned, const WeightStore* source, const std::string& path)
      : owned_(std::move(owned)), src_(owned_ ? owned_.get() : source), path_(path) {
    const std::vector<std::string> names = src_->names();
    std::set<std::string> used;
    for (const Rule& r : rules(block_count(names, "transformer_blocks."), block_count(names, "single_transformer_blocks."))) {
      std::vector<std::string> present, missing;
      for (const auto& p : r.parts) (src_->has(p) ? present : missing).push_back(p);
      if (present.empty()) continue;  // absent as a whole (schnell's guidance_in): the config decides
      if (!missing.empty())
        fail(path_, ": ", missing[0], " is missing, while ", present[0], " is there (together they make the official ",
             r.official, ")");
      fused_.emplace(r.official, make(r));
      order_.push_back(r.official);
      used.insert(r.parts.begin(), r.parts.end());
    }
    for (const auto& n : names)
      if (!used.count(n))
        fail(path_, ": tensor ", n, " has no place in a Flux.1 transformer (read with diffusers' FluxTransformer2DModel names",
             quantised_hint(n), ")");
    metadata_ = src_->metadata();
    metadata_["raylight.names"] = "diffusers";  // said in the spec's summary
    take_head_count();
  }

  bool has(const std::string& n) const override { return fused_.count(n) != 0; }
  Shape shape(const std::string& n) const override { return at(n).shape; }
  DType stored_dtype(const std::string& n) const override { return at(n).dtype; }
  std::vector<std::string> names() const override { return order_; }
  std::map<std::string, std::string> metadata() const override { return metadata_; }
  float stored_scale(const std::string& n) const override { return at(n).scale; }

  Stored stored(const std::string& n) const override {
    const Fused& f = at(n);
    if (whole(f)) {
      Stored s = src_->stored(f.pieces[0].name);
      s.bytes = s.bytes.reshape(f.shape);
      return s;
    }
    // Made here, one tensor at a time: the caller holds it while it uses it.
    Tensor t = Tensor::empty(f.shape, f.dtype);
    read_stored(n, 0, t.nbytes(), t.raw());
    return {t, f.scale};
  }

  void read_stored(const std::string& n, size_t offset, size_t size, void* dst) const override {
    const Fused& f = at(n);
    const size_t total = shape_nbytes(f.shape, f.dtype);
    if (offset > total || size > total - offset)
      fail("weight ", n, ": bytes [", offset, ", ", offset + size, ") are outside its ", total, " bytes");
    if (f.widened) return read_widened(f, offset, size, static_cast<uint8_t*>(dst));
    const size_t row_bytes = static_cast<size_t>(f.row_elems) * dtype_size(f.dtype);
    size_t at_byte = 0;  // where the piece starts in the official tensor
    for (const Piece& p : f.pieces) {
      const size_t bytes = static_cast<size_t>(p.rows) * row_bytes;
      const size_t lo = std::max(offset, at_byte), hi = std::min(offset + size, at_byte + bytes);
      if (lo < hi)
        src_->read_stored(p.name, static_cast<size_t>(p.first_row) * row_bytes + (lo - at_byte), hi - lo,
                          static_cast<uint8_t*>(dst) + (lo - offset));
      at_byte += bytes;
    }
  }

  void release_stored(const std::string& n) const override {
    std::set<std::string> done;
    for (const Piece& p : at(n).pieces)
      if (done.insert(p.name).second) src_->release_stored(p.name);
  }

 private:
  static bool whole(const Fused& f) { return f.pieces.size() == 1 && f.pieces[0].first_row == 0 && !f.widened; }

  const Fused& at(const std::string& n) const {
    auto it = fused_.find(n);
    if (it == fused_.end()) fail("Flux.1 transformer (diffusers names) ", path_, ": no tensor ", n);
    return it->second;
  }

  Fused make(const Rule& r) const {
    Fused f;
    std::vector<Piece> parts;
    Shape first = src_->shape(r.parts[0]);
    if (first.empty()) fail(path_, ": tensor ", r.parts[0], " is a scalar; ", r.official, " needs rows");
    int64_t rows = 0;
    for (const auto& name : r.parts) {
      const Shape s = src_->shape(name);
      if (s.size() != first.size() || !std::equal(s.begin() + 1, s.end(), first.begin() + 1))
        fail(path_, ": tensors ", r.parts[0], " ", shape_str(first), " and ", name, " ", shape_str(s),
             " do not fit together as rows of ", r.official);
      parts.push_back({name, 0, s[0], src_->stored_dtype(name), src_->stored_scale(name)});
      rows += s[0];
    }
    // q, k and v of one attention have one width.
    for (size_t i = 1; i < parts.size() && i < 3; ++i)
      if (parts[i].rows != parts[0].rows)
        fail(path_, ": ", parts[i].name, " has ", parts[i].rows, " rows and ", parts[0].name, " ", parts[0].rows,
             "; the parts of ", r.official, " must be equally wide");
    if (r.swap_halves) {
      if (rows % 2) fail(path_, ": ", r.parts[0], " has ", rows, " rows; its [scale, shift] halves need an even count");
      Piece shift = parts[0], scale = parts[0];
      shift.first_row = rows / 2;
      shift.rows = scale.rows = rows / 2;
      parts = {shift, scale};
    }
    f.pieces = parts;
    f.shape = first;
    f.shape[0] = rows;
    f.row_elems = shape_numel(Shape(first.begin() + 1, first.end()));
    f.dtype = parts[0].dtype;
    f.scale = parts[0].scale;
    bool same = true;
    for (const Piece& p : parts) same = same && p.dtype == f.dtype && p.scale == f.scale;
    if (!same) {
      bool narrow = true;
      for (const Piece& p : parts) narrow = narrow && (is_fp8(p.dtype) || p.dtype == DType::BF16);
      for (const Piece& p : parts)
        if (!dtype_is_float(p.dtype)) fail(path_, ": ", p.name, " is ", dtype_name(p.dtype), ", not a float tensor");
      f.dtype = narrow ? DType::BF16 : DType::F32;
      f.scale = 1.0f;
      f.widened = true;
    }
    shape_nbytes(f.shape, f.dtype);  // overflow-checked once here
    return f;
  }

  // Pieces of different dtypes or scales, each dequantised and converted to f.dtype.
  void read_widened(const Fused& f, size_t offset, size_t size, uint8_t* dst) const {
    const size_t es = dtype_size(f.dtype);
    const size_t first = offset / es, last = (offset + size + es - 1) / es;  // elements covered
    size_t at_elem = 0;
    for (const Piece& p : f.pieces) {
      const size_t n = static_cast<size_t>(p.rows) * static_cast<size_t>(f.row_elems);
      const size_t lo = std::max(first, at_elem), hi = std::min(last, at_elem + n);
      if (lo < hi) {
        const size_t ps = dtype_size(p.dtype), count = hi - lo;
        const size_t from = static_cast<size_t>(p.first_row) * static_cast<size_t>(f.row_elems) + (lo - at_elem);
        std::vector<uint8_t> raw(count * ps);
        src_->read_stored(p.name, from * ps, raw.size(), raw.data());
        std::vector<float> values(count);
        convert_to_f32(p.dtype, raw.data(), values.data(), count);
        if (p.scale != 1.0f)
          for (float& v : values) v *= p.scale;
        std::vector<uint8_t> out(count * es);
        convert_from_f32(f.dtype, values.data(), out.data(), count);
        // The bytes of [lo, hi) that fall inside the asked range.
        const size_t b_lo = std::max(lo * es, offset), b_hi = std::min(hi * es, offset + size);
        std::memcpy(dst + (b_lo - offset), out.data() + (b_lo - lo * es), b_hi - b_lo);
      }
      at_elem += n;
    }
  }

  // config.json's head count as raylight.num_heads, checked against the tensors.
  void take_head_count() {
    auto number = [&](const std::string& key) -> std::optional<int64_t> {
      auto it = metadata_.find("diffusers.config." + key);
      if (it == metadata_.end()) return std::nullopt;
      try {
        size_t used = 0;
        const long long v = std::stoll(it->second, &used);
        if (used == it->second.size() && v > 0 && v < (1 << 20)) return v;
      } catch (const std::exception&) {
      }
      fail(path_, ": config.json's ", key, " is ", it->second, ", not a positive count");
    };
    const auto heads = number("num_attention_heads");
    if (!heads || metadata_.count("raylight.num_heads")) return;
    const int64_t hidden = has("img_in.weight") ? shape("img_in.weight")[0] : 0;
    if (const auto dim = number("attention_head_dim"); dim && *heads * *dim != hidden)
      fail(path_, ": config.json says ", *heads, " heads of ", *dim, ", but x_embedder makes ", hidden, " features");
    if (hidden % *heads) fail(path_, ": config.json's ", *heads, " heads do not divide the width ", hidden);
    FluxConfig c;
    c.hidden = hidden;
    c.num_heads = *heads;
    const RopeAxes axes = c.rope_axes();
    auto it = metadata_.find("diffusers.config.axes_dims_rope");
    if (it != metadata_.end()) {
      const std::string ours = "[" + std::to_string(axes.frame) + "," + std::to_string(axes.height) + "," + std::to_string(axes.width) + "]";
      if (it->second != ours)
        fail(path_, ": config.json's axes_dims_rope ", it->second, " is not Flux.1's split of a ", c.head_dim(),
             "-wide head (", ours, ")");
    }
    metadata_["raylight.num_heads"] = std::to_string(*heads);
  }

  std::unique_ptr<WeightStore> owned_;
  const WeightStore* src_;
  std::string path_;
  std::map<std::string, Fused> fused_;
  std::vector<std::string> order_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace

bool is_diffusers_flux(const WeightStore& w) {
  return w.has("x_embedder.weight") && w.has("context_embedder.weight") &&
         w.has("time_text_embed.timestep_embedder.linear_1.weight") &&
         (w.has("transformer_blocks.0.attn.to_q.weight") || w.has("single_transformer_blocks.0.attn.to_q.weight"));
}

std::unique_ptr<WeightStore> diffusers_flux_view(std::unique_ptr<WeightStore> weights, const std::string& source) {
  return std::make_unique<DiffusersFlux>(std::move(weights), nullptr, source);
}

std::unique_ptr<WeightStore> diffusers_flux_view(const WeightStore& weights, const std::string& source) {
  return std::make_unique<DiffusersFlux>(nullptr, &weights, source);
}

}  // namespace raylight
