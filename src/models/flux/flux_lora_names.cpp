#include "models/flux/flux_lora_names.h"

#include <map>

namespace raylight {
namespace {

std::string flat(std::string s) {
  for (char& ch : s)
    if (ch == '.') ch = '_';
  return s;
}

// Every trainer's key stem for one diffusers module name.
std::vector<std::string> forms(const std::string& diffusers) {
  return {"transformer." + diffusers, "lycoris_" + flat(diffusers), "lora_transformer_" + flat(diffusers)};
}

// "<prefix><i>.<rest>": i and rest, or -1.
int block_index(const std::string& name, const std::string& prefix, std::string* rest) {
  if (name.rfind(prefix, 0) != 0) return -1;
  size_t i = prefix.size(), j = i;
  while (j < name.size() && j - i < 4 && name[j] >= '0' && name[j] <= '9') ++j;
  if (j == i || j >= name.size() || name[j] != '.') return -1;
  *rest = name.substr(j + 1);
  return std::stoi(name.substr(i, j - i));
}

}  // namespace

std::vector<std::string> flux_diffusers_lora_stems(const std::string& weight) {
  const std::string suffix = ".weight";
  if (weight.size() <= suffix.size() || weight.compare(weight.size() - suffix.size(), suffix.size(), suffix) != 0)
    return {};
  const std::string stem = weight.substr(0, weight.size() - suffix.size());
  static const std::map<std::string, std::vector<std::string>> kDouble = {
      {"img_attn.proj", {"attn.to_out.0"}},
      {"img_mod.lin", {"norm1.linear"}},
      {"txt_mod.lin", {"norm1_context.linear"}},
      {"txt_attn.proj", {"attn.to_add_out"}},
      {"img_mlp.0", {"ff.net.0.proj", "ff.linear_in"}},
      {"img_mlp.2", {"ff.net.2", "ff.linear_out"}},
      {"txt_mlp.0", {"ff_context.net.0.proj", "ff_context.linear_in"}},
      {"txt_mlp.2", {"ff_context.net.2", "ff_context.linear_out"}},
      {"img_attn.norm.query_norm", {"attn.norm_q"}},
      {"img_attn.norm.key_norm", {"attn.norm_k"}},
      {"txt_attn.norm.query_norm", {"attn.norm_added_q"}},
      {"txt_attn.norm.key_norm", {"attn.norm_added_k"}}};
  static const std::map<std::string, std::vector<std::string>> kSingle = {
      {"modulation.lin", {"norm.linear"}},
      {"linear2", {"proj_out"}},
      {"norm.query_norm", {"attn.norm_q"}},
      {"norm.key_norm", {"attn.norm_k"}}};
  static const std::map<std::string, std::string> kGlobal = {
      {"final_layer.linear", "proj_out"},
      {"img_in", "x_embedder"},
      {"txt_in", "context_embedder"},
      {"time_in.in_layer", "time_text_embed.timestep_embedder.linear_1"},
      {"time_in.out_layer", "time_text_embed.timestep_embedder.linear_2"},
      {"vector_in.in_layer", "time_text_embed.text_embedder.linear_1"},
      {"vector_in.out_layer", "time_text_embed.text_embedder.linear_2"},
      {"guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1"},
      {"guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2"}};
  std::vector<std::string> out;
  std::string rest;
  if (int i = block_index(stem, "double_blocks.", &rest); i >= 0) {
    auto it = kDouble.find(rest);
    if (it != kDouble.end())
      for (const auto& d : it->second)
        for (auto& f : forms("transformer_blocks." + std::to_string(i) + "." + d)) out.push_back(f);
  } else if (int j = block_index(stem, "single_blocks.", &rest); j >= 0) {
    auto it = kSingle.find(rest);
    if (it != kSingle.end())
      for (const auto& d : it->second)
        for (auto& f : forms("single_transformer_blocks." + std::to_string(j) + "." + d)) out.push_back(f);
  } else if (auto it = kGlobal.find(stem); it != kGlobal.end()) {
    out = forms(it->second);
  }
  return out;
}

std::vector<std::pair<std::string, LoraTarget>> flux_lora_slices(const FluxConfig& c) {
  std::vector<std::pair<std::string, LoraTarget>> out;
  auto add = [&](const std::string& diffusers, const LoraTarget& t) {
    for (auto& f : forms(diffusers)) out.emplace_back(f, t);
  };
  const int64_t h = c.hidden;
  for (int64_t i = 0; i < c.depth; ++i) {
    const std::string from = "transformer_blocks." + std::to_string(i) + ".attn.";
    const std::string to = "double_blocks." + std::to_string(i) + ".";
    const char* img[] = {"to_q", "to_k", "to_v"};
    const char* txt[] = {"add_q_proj", "add_k_proj", "add_v_proj"};
    for (int k = 0; k < 3; ++k) {
      add(from + img[k], {to + "img_attn.qkv.weight", k * h, h});
      add(from + txt[k], {to + "txt_attn.qkv.weight", k * h, h});
    }
  }
  for (int64_t i = 0; i < c.depth_single; ++i) {
    const std::string from = "single_transformer_blocks." + std::to_string(i) + ".";
    const std::string to = "single_blocks." + std::to_string(i) + ".linear1.weight";
    const char* qkv[] = {"attn.to_q", "attn.to_k", "attn.to_v"};
    for (int k = 0; k < 3; ++k) add(from + qkv[k], {to, k * h, h});
    add(from + "proj_mlp", {to, 3 * h, c.mlp_hidden});
    // ComfyUI's own name for the attention part of linear1 (q, k and v together).
    out.emplace_back("diffusion_model.single_blocks." + std::to_string(i) + ".linear1_qkv", LoraTarget{to, 0, 3 * h});
  }
  add("norm_out.linear", {"final_layer.adaLN_modulation.1.weight", 0, 0, true});
  return out;
}

}  // namespace raylight
