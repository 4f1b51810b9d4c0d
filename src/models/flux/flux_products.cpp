#include "models/flux/flux_products.h"

#include <string>

namespace raylight {

std::vector<DenoiserProduct> flux_products(const FluxConfig& c, int64_t text_tokens, int64_t image_tokens,
                                           const SegmentRows& rows) {
  std::vector<DenoiserProduct> out;
  // Every Flux product has a bias but linear2's second half (linear_pair).
  auto add = [&](const std::string& name, int64_t m, int64_t n, int64_t k, bool gelu = false) -> LinearShape& {
    out.push_back(DenoiserProduct::biased(name, m, n, k, gelu));
    return out.back().shape;
  };
  const int64_t h = c.hidden, mlp = c.mlp_hidden;
  auto embedder = [&](const std::string& name, int64_t in) {  // one vector: [1, in] -> [1, h]
    add(name + ".in_layer", 1, h, in);
    add(name + ".out_layer", 1, h, h);
  };
  // prepare(): the text tokens and the pooled vector (and guidance) embedded.
  add("txt_in", text_tokens, h, c.context_in);
  embedder("vector_in", c.vec_in);
  if (c.guidance_embed) embedder("guidance_in", 256);
  // predict(): the image patches (every token, before they are split) and the timestep.
  add("img_in", image_tokens, h, c.in_channels);
  embedder("time_in", 256);
  const int64_t lt = rows(text_tokens), li = rows(image_tokens);
  for (int64_t i = 0; i < c.depth; ++i) {
    const std::string b = "double_blocks." + std::to_string(i) + ".";
    add(b + "img_mod.lin", 1, 6 * h, h);
    add(b + "txt_mod.lin", 1, 6 * h, h);
    for (const auto& [stream, m] : {std::pair<std::string, int64_t>{"txt", lt}, {"img", li}}) {
      add(b + stream + "_attn.qkv", m, 3 * h, h);
      add(b + stream + "_attn.proj", m, h, h);
      add(b + stream + "_mlp.0", m, mlp, h, true);
      add(b + stream + "_mlp.2", m, h, mlp);
    }
  }
  for (int64_t i = 0; i < c.depth_single; ++i) {
    const std::string b = "single_blocks." + std::to_string(i) + ".";
    add(b + "modulation.lin", 1, 3 * h, h);
    // linear1's rows: the MLP's (GELU) and q/k/v's, two products over one input.
    add(b + "linear1", lt + li, mlp, h, true);
    add(b + "linear1", lt + li, 3 * h, h);
    // linear2 over [attention | mlp]: its first h columns, then the rest added in.
    add(b + "linear2", lt + li, h, h + mlp).columns = h;
    LinearShape& second = add(b + "linear2", lt + li, h, h + mlp);
    second.first_column = h;
    second.bias = false;
    second.accumulate = true;
  }
  add("final_layer.adaLN_modulation.1", 1, 2 * h, h);
  add("final_layer.linear", li, c.out_channels, h);
  return out;
}

}  // namespace raylight
