// Golden cases (see golden_cases.h). Parameters come from the fixture (`<case>.param.*`), so
// this file and make_op_golden.py cannot drift apart.
#include "golden_cases.h"

#include "backend/rope_table.h"

namespace raylight::suite {
namespace {

using Pairs = std::vector<std::pair<Tensor, Tensor>>;

int64_t iparam(const SafetensorsFile& f, const std::string& c, const std::string& n) {
  return f.tensor(c + ".param." + n).data<int32_t>()[0];
}
float fparam(const SafetensorsFile& f, const std::string& c, const std::string& n) {
  return f.tensor(c + ".param." + n).to_f32().f32()[0];
}
Tensor in(const SafetensorsFile& f, const std::string& c, const std::string& n) {
  return f.tensor(c + "." + n).to_f32().clone();
}

GoldenCase pointwise(std::string name, std::function<Tensor(Backend&, const SafetensorsFile&)> op) {
  return {name, name, [name, op](Backend& be, const SafetensorsFile& f) {
            return Pairs{{be.download(op(be, f)), in(f, name, "out")}};
          }};
}

GoldenCase rope(std::string name, RopePairs pairs) {
  return {name, "apply_rope", [name, pairs](Backend& be, const SafetensorsFile& f) {
            Tensor x = be.upload(in(f, name, "x"));
            be.apply_rope(x, in(f, name, "table"), pairs, iparam(f, name, "first_token"));
            return Pairs{{be.download(x), in(f, name, "out")}};
          }};
}

GoldenCase attention(std::string name) {
  return {name, "causal_attention", [name](Backend& be, const SafetensorsFile& f) {
            const Tensor q = be.upload(in(f, name, "q")), k = be.upload(in(f, name, "k")), v = be.upload(in(f, name, "v"));
            const int64_t k_valid = iparam(f, name, "k_valid");
            Tensor lse;
            Tensor o = iparam(f, name, "causal") ? be.causal_attention(q, k, v, k_valid, &lse)
                                                 : be.attention(q, k, v, k_valid, &lse);
            return Pairs{{be.download(o), in(f, name, "out")}, {be.download(lse), in(f, name, "lse")}};
          }};
}

GoldenCase group_norm(std::string name, bool over_frames) {
  return {name, "group_norm", [name, over_frames](Backend& be, const SafetensorsFile& f) {
            Backend::GroupNormSpec spec;
            spec.groups = iparam(f, name, "groups");
            spec.eps = fparam(f, name, "eps");
            spec.silu = iparam(f, name, "silu") != 0;
            spec.over_frames = over_frames;
            const bool affine = f.has(name + ".weight");
            Tensor y = be.group_norm(be.upload(in(f, name, "x")), affine ? be.upload(in(f, name, "weight")) : Tensor(),
                                     affine ? be.upload(in(f, name, "bias")) : Tensor(), spec);
            return Pairs{{be.download(y), in(f, name, "out")}};
          }};
}

GoldenCase conv2d(std::string name) {
  return {name, "conv2d", [name](Backend& be, const SafetensorsFile& f) {
            Backend::Conv2dSpec s;
            s.stride_h = s.stride_w = static_cast<int>(iparam(f, name, "stride"));
            s.pad_left = static_cast<int>(iparam(f, name, "pad_left"));
            s.pad_right = static_cast<int>(iparam(f, name, "pad_right"));
            s.pad_top = static_cast<int>(iparam(f, name, "pad_top"));
            s.pad_bottom = static_cast<int>(iparam(f, name, "pad_bottom"));
            const Tensor b = f.has(name + ".b") ? be.weight(in(f, name, "b"), 1.0f) : Tensor();
            Tensor y = be.conv2d(be.upload(in(f, name, "x")), be.weight(in(f, name, "w"), 1.0f), b, s);
            return Pairs{{be.download(y), in(f, name, "out")}};
          }};
}

}  // namespace

std::string golden_path() { return RAYLIGHT_FIXTURE_DIR "/op_golden.safetensors"; }

std::vector<GoldenCase> golden_cases() {
  std::vector<GoldenCase> cs;
  cs.push_back(pointwise("quick_gelu", [](Backend& be, const SafetensorsFile& f) {
    return be.quick_gelu(be.upload(in(f, "quick_gelu", "x")));
  }));
  cs.push_back(pointwise("swiglu", [](Backend& be, const SafetensorsFile& f) {
    return be.swiglu(be.upload(in(f, "swiglu", "gate")), be.upload(in(f, "swiglu", "up")));
  }));
  cs.push_back(rope("rope_halves", RopePairs::Halves));
  cs.push_back(rope("rope_adjacent", RopePairs::Adjacent));
  // The table rope_table_1d builds is the one Qwen's inv_freq gives.
  cs.push_back({"rope_table_1d", "apply_rope", [](Backend&, const SafetensorsFile& f) {
                  const Tensor want = in(f, "rope_halves", "table");
                  return Pairs{{rope_table_1d(0, want.dim(0), int(want.dim(1) * 2), fparam(f, "rope_halves", "theta")),
                                want}};
                }});
  for (const char* c : {"attn_clip", "attn_qwen", "attn_llama"}) cs.push_back(attention(c));
  GoldenCase gqa = attention("attn_gqa");
  gqa.op = "attention";
  cs.push_back(gqa);
  cs.push_back(group_norm("gn_flux", false));
  cs.push_back(group_norm("gn_video", true));
  cs.push_back(group_norm("gn_plain", false));
  for (const char* c : {"conv_3x3", "conv_down", "conv_1x1"}) cs.push_back(conv2d(c));
  cs.push_back(pointwise("upsample", [](Backend& be, const SafetensorsFile& f) {
    return be.upsample_nearest2x(be.upload(in(f, "upsample", "x")));
  }));
  cs.back().op = "upsample_nearest2x";
  return cs;
}

}  // namespace raylight::suite
