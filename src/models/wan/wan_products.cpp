#include "models/wan/wan_products.h"

#include <string>

namespace raylight {

std::vector<DenoiserProduct> wan_products(const WanConfig& c, int64_t tokens, const SegmentRows& rows) {
  std::vector<DenoiserProduct> out;
  // Every Wan product has a bias.
  auto add = [&](const std::string& name, int64_t m, int64_t n, int64_t k, bool gelu = false) {
    out.push_back(DenoiserProduct::biased(name, m, n, k, gelu));
  };
  const int64_t d = c.dim;
  // prepare(): the text (padded to text_len) and, for image-to-video, the CLIP features.
  add("text_embedding.0", c.text_len, d, c.text_dim, true);
  add("text_embedding.2", c.text_len, d, d);
  if (c.image_to_video()) {
    add("img_emb.proj.1", c.image_tokens, c.clip_dim, c.clip_dim);
    add("img_emb.proj.3", c.image_tokens, d, c.clip_dim);
  }
  // forward(): the patch embedding over every token (before they are split), then the blocks
  // over this process's rows. The time embedding and the head take fp32 products: not listed.
  add("patch_embedding", tokens, d, c.in_dim * c.patch.t * c.patch.h * c.patch.w);
  const int64_t local = rows(tokens);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    for (const char* p : {"q", "k", "v", "o"}) add(b + "self_attn." + p, local, d, d);
    add(b + "cross_attn.q", local, d, d);
    if (c.image_to_video()) {
      add(b + "cross_attn.k_img", c.image_tokens, d, d);
      add(b + "cross_attn.v_img", c.image_tokens, d, d);
    }
    add(b + "cross_attn.k", c.text_len, d, d);
    add(b + "cross_attn.v", c.text_len, d, d);
    add(b + "cross_attn.o", local, d, d);
    add(b + "ffn.0", local, c.ffn_dim, d, true);
    add(b + "ffn.2", local, d, c.ffn_dim);
  }
  return out;
}

}  // namespace raylight
