// Product plans before the first step: the Wan family lists the products of a forward and
// of its conditioning embedding with their shapes and epilogues (1.3B and 14B, text- and
// image-to-video), block products over this process's rows and the others over all of
// theirs; every listed weight exists with the listed shape; the CPU backend has no plans
// (prepare is a no-op answering false) but refuses bad shapes as every backend does; and the
// pipeline's preparation on the CPU lists the products and makes nothing.
#include <gtest/gtest.h>

#include <iterator>
#include <map>

#include "backend/linear_plans.h"
#include "core/error.h"
#include "models/registry.h"
#include "models/flux/flux_config.h"
#include "models/wan/wan_config.h"
#include "pipeline/model_loader.h"
#include "pipeline/job_plans.h"
#include "../error_of.h"

using namespace raylight;
using namespace raylight::test;

namespace {

// A header's worth of a big checkpoint: names, shapes and stored dtypes, no bytes.
class Headers final : public WeightStore {
 public:
  Headers(const std::vector<std::pair<std::string, Shape>>& tensors, DType matrices) {
    for (const auto& [n, s] : tensors) {
      shapes_[n] = s;
      dtypes_[n] = s.size() == 2 && n.rfind("blocks.", 0) == 0 ? matrices : DType::BF16;
    }
  }
  bool has(const std::string& n) const override { return shapes_.count(n) != 0; }
  Shape shape(const std::string& n) const override { return shapes_.at(n); }
  DType stored_dtype(const std::string& n) const override { return dtypes_.at(n); }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& [n, s] : shapes_) out.push_back(n);
    return out;
  }
  Stored stored(const std::string& n) const override { fail("no bytes for ", n); }

 private:
  std::map<std::string, Shape> shapes_;
  std::map<std::string, DType> dtypes_;
};

WanConfig wan_config(int64_t dim, int64_t ffn, int64_t layers) {
  WanConfig c;
  c.dim = dim, c.num_heads = dim / 128, c.ffn_dim = ffn, c.num_layers = layers;
  return c;
}

std::map<std::string, LinearShape> by_weight(const std::vector<DenoiserProduct>& list) {
  std::map<std::string, LinearShape> out;
  for (const auto& p : list) {
    EXPECT_EQ(out.count(p.weight), 0u) << p.weight << " listed twice";
    out[p.weight] = p.shape;
  }
  return out;
}

// rows x [out, width], bias and GELU as expected, the whole weight read, no accumulation.
void expect_product(const std::map<std::string, LinearShape>& got, const std::string& weight, int64_t rows,
                    int64_t out, int64_t width, bool gelu) {
  auto it = got.find(weight);
  ASSERT_NE(it, got.end()) << weight << " is not listed";
  const LinearShape& s = it->second;
  EXPECT_EQ(s.rows, rows) << weight;
  EXPECT_EQ(s.out, out) << weight;
  EXPECT_EQ(s.width, width) << weight;
  EXPECT_EQ(s.reads(), width) << weight;
  EXPECT_TRUE(s.bias) << weight;
  EXPECT_EQ(s.gelu, gelu) << weight;
  EXPECT_FALSE(s.accumulate) << weight;
}

// Every listed weight is in the checkpoint, [out, width] as stored (the patch embedding's
// 5-D kernel as the [dim, in x patch] matrix the forward reshapes it to).
void expect_in_checkpoint(const std::vector<DenoiserProduct>& list, const WeightStore& w) {
  for (const auto& p : list) {
    ASSERT_TRUE(w.has(p.weight)) << p.weight;
    const Shape s = w.shape(p.weight);
    EXPECT_EQ(s[0], p.shape.out) << p.weight;
    EXPECT_EQ(shape_numel(s) / s[0], p.shape.width) << p.weight;
  }
}

struct WanCase {
  const char* what;
  WanConfig config;
};

}  // namespace

TEST(WanProducts, ListEveryProductOfAForwardWithItsEpilogue) {
  const WanConfig t2v_1_3b = wan_config(1536, 8960, 30);
  const WanConfig t2v_14b = wan_config(5120, 13824, 40);
  for (const WanCase& wc : {WanCase{"1.3B", t2v_1_3b}, WanCase{"14B", t2v_14b}}) {
    const WanConfig& c = wc.config;
    Headers w(wan_expected_tensors(c), DType::BF16);
    const auto spec = denoiser_spec(w, std::string("wan2.1_t2v_") + wc.what + ".safetensors");
    const Shape item = spec->latent_shape({832, 480, 81});
    const int64_t tokens = spec->sequence_tokens(item);
    ASSERT_EQ(tokens, 21 * 30 * 52);
    // Four ranks of a sequence split: the blocks run over a quarter of the (padded) tokens.
    const int64_t local = (tokens + 3) / 4;
    const auto list = spec->products(item, [](int64_t n) { return (n + 3) / 4; });
    EXPECT_EQ(list.size(), static_cast<size_t>(2 + 1 + c.num_layers * 10)) << wc.what;
    const auto got = by_weight(list);
    const int64_t d = c.dim;
    expect_product(got, "text_embedding.0.weight", 512, d, 4096, true);
    expect_product(got, "text_embedding.2.weight", 512, d, d, false);
    expect_product(got, "patch_embedding.weight", tokens, d, 16 * 1 * 2 * 2, false);  // before the split
    for (int64_t i : {int64_t{0}, c.num_layers - 1}) {
      const std::string b = "blocks." + std::to_string(i) + ".";
      for (const char* p : {"q", "k", "v", "o"}) expect_product(got, b + "self_attn." + p + ".weight", local, d, d, false);
      expect_product(got, b + "cross_attn.q.weight", local, d, d, false);
      expect_product(got, b + "cross_attn.k.weight", 512, d, d, false);  // the text, held whole
      expect_product(got, b + "cross_attn.v.weight", 512, d, d, false);
      expect_product(got, b + "cross_attn.o.weight", local, d, d, false);
      expect_product(got, b + "ffn.0.weight", local, c.ffn_dim, d, true);
      expect_product(got, b + "ffn.2.weight", local, d, c.ffn_dim, false);
    }
    // fp32 products (time embedding, head) are not cuBLASLt's: not listed.
    EXPECT_EQ(got.count("time_embedding.0.weight"), 0u);
    EXPECT_EQ(got.count("head.head.weight"), 0u);
    EXPECT_EQ(got.count("blocks.0.cross_attn.k_img.weight"), 0u);
    expect_in_checkpoint(list, w);
  }
}

TEST(WanProducts, ImageToVideoAddsTheImageProducts) {
  WanConfig c = wan_config(5120, 13824, 40);
  c.in_dim = 36, c.clip_dim = 1280;
  Headers w(wan_expected_tensors(c), DType::F8E4M3);
  const auto spec = denoiser_spec(w, "wan2.1_i2v_480p_14B.safetensors");
  const Shape item = spec->latent_shape({832, 480, 81});
  const int64_t tokens = spec->sequence_tokens(item);
  const auto list = spec->products(item, [](int64_t n) { return n; });
  EXPECT_EQ(list.size(), static_cast<size_t>(4 + 1 + c.num_layers * 12));
  const auto got = by_weight(list);
  expect_product(got, "img_emb.proj.1.weight", 257, 1280, 1280, false);
  expect_product(got, "img_emb.proj.3.weight", 257, 5120, 1280, false);
  expect_product(got, "patch_embedding.weight", tokens, 5120, 36 * 4, false);
  expect_product(got, "blocks.7.cross_attn.k_img.weight", 257, 5120, 5120, false);
  expect_product(got, "blocks.7.cross_attn.v_img.weight", 257, 5120, 5120, false);
  expect_product(got, "blocks.7.self_attn.q.weight", tokens, 5120, 5120, false);
  expect_in_checkpoint(list, w);
}

TEST(LinearPlans, TheCpuBackendHasNoneAndRefusesBadShapes) {
  auto cpu = make_cpu_backend();
  LinearShape s;
  s.rows = 64, s.out = 32, s.width = 48, s.bias = true, s.gelu = true;
  EXPECT_FALSE(prepare_linears(*cpu, {s}));
  EXPECT_FALSE(prepare_linears(*cpu, {}));
  EXPECT_EQ(linear_plans_made(*cpu), 0);
  auto refused = [&](LinearShape bad) { return error_of([&] { prepare_linears(*cpu, {s, bad}); }); };
  LinearShape bad = s;
  bad.rows = -1;
  EXPECT_NE(refused(bad).find("rows -1"), std::string::npos) << refused(bad);
  bad = s;
  bad.out = 0;
  EXPECT_NE(refused(bad).find("weight [0, 48]"), std::string::npos) << refused(bad);
  bad = s;
  bad.first_column = 40, bad.columns = 16;
  EXPECT_NE(refused(bad).find("columns [40, 56)"), std::string::npos) << refused(bad);
  bad = s;
  bad.first_column = -8;
  EXPECT_NE(refused(bad).find("outside"), std::string::npos) << refused(bad);
  bad = s;
  bad.accumulate = true;
  EXPECT_NE(refused(bad).find("GELU"), std::string::npos) << refused(bad);
  bad = s;
  bad.rows = int64_t{1} << 40, bad.out = int64_t{1} << 40;
  EXPECT_NE(refused(bad), "(no error)") << "sizes whose bytes overflow";
}

TEST(LinearPlans, ASampleJobOnTheCpuListsItsProductsAndMakesNoPlans) {
  LoadedModel m = load_model("tiny");
  const SamplingDefaults d = m.spec->defaults();
  const Shape item = m.spec->latent_shape({d.width, d.height, d.frames});
  const ProductPlans r = prepare_product_plans(m, item);
  EXPECT_GT(r.products, 0);
  EXPECT_EQ(r.plans_made, 0);
  EXPECT_FALSE(r.prepared);
  EXPECT_FALSE(prepare_attention_plans(m, item)) << "the CPU has no attention plans either";
  // The attention seam's split, known before a forward: one process holds every row.
  EXPECT_EQ(m.attention->segment_rows(1234), 1234);
  EXPECT_EQ(m.attention->segment_rows(0), 0);
  EXPECT_NE(error_of([&] { m.attention->segment_rows(-1); }).find("-1 tokens"), std::string::npos);
}

TEST(FluxProducts, ListTheStreamsOverTheirOwnRowsAndLinear2AsAPair) {
  FluxConfig c;
  c.hidden = 3072, c.num_heads = 24, c.mlp_hidden = 12288, c.depth = 19, c.depth_single = 38;
  Headers w(flux_expected_tensors(c), DType::F8E4M3);
  const auto spec = denoiser_spec(w, "flux1-dev.safetensors");
  const Shape item = spec->latent_shape({1024, 1024, 1});
  // Two ranks of a sequence split: each holds half of the text and half of the image.
  const auto list = spec->products(item, [](int64_t n) { return (n + 1) / 2; });
  const int64_t h = 3072, mlp = 12288, lt = 256, li = 2048;
  EXPECT_EQ(list.size(), static_cast<size_t>(8 + 19 * 10 + 38 * 5 + 2));
  std::multimap<std::string, LinearShape> got;
  for (const auto& p : list) got.emplace(p.weight, p.shape);
  auto one = [&](const std::string& weight) {
    EXPECT_EQ(got.count(weight), 1u) << weight;
    return got.count(weight) ? got.find(weight)->second : LinearShape{};
  };
  EXPECT_EQ(one("txt_in.weight").rows, 512);  // dev's T5 padding
  EXPECT_EQ(one("img_in.weight").rows, 64 * 64);
  EXPECT_EQ(one("time_in.in_layer.weight").rows, 1);
  EXPECT_EQ(one("guidance_in.out_layer.weight").out, h);
  const LinearShape qkv = one("double_blocks.3.img_attn.qkv.weight");
  EXPECT_EQ(qkv.rows, li);
  EXPECT_EQ(qkv.out, 3 * h);
  const LinearShape txt_mlp = one("double_blocks.3.txt_mlp.0.weight");
  EXPECT_EQ(txt_mlp.rows, lt);
  EXPECT_EQ(txt_mlp.out, mlp);
  EXPECT_TRUE(txt_mlp.gelu);
  EXPECT_FALSE(one("double_blocks.3.txt_mlp.2.weight").gelu);
  EXPECT_EQ(one("single_blocks.5.modulation.lin.weight").out, 3 * h);
  EXPECT_EQ(one("final_layer.linear.weight").rows, li);
  // linear1: the MLP rows (GELU) and the q/k/v rows over the joint rows.
  auto [l1, l1_end] = got.equal_range("single_blocks.5.linear1.weight");
  ASSERT_EQ(std::distance(l1, l1_end), 2);
  EXPECT_EQ(l1->second.out, mlp);
  EXPECT_TRUE(l1->second.gelu);
  EXPECT_EQ(std::next(l1)->second.out, 3 * h);
  EXPECT_EQ(l1->second.rows, lt + li);
  // linear2: columns [0, h) with the bias, then [h, h + mlp) added in.
  auto [l2, l2_end] = got.equal_range("single_blocks.5.linear2.weight");
  ASSERT_EQ(std::distance(l2, l2_end), 2);
  const LinearShape first = l2->second, second = std::next(l2)->second;
  EXPECT_EQ(first.width, h + mlp);
  EXPECT_EQ(first.reads(), h);
  EXPECT_TRUE(first.bias);
  EXPECT_FALSE(first.accumulate);
  EXPECT_EQ(second.first_column, h);
  EXPECT_EQ(second.reads(), mlp);
  EXPECT_FALSE(second.bias);
  EXPECT_TRUE(second.accumulate);
  for (const auto& p : list) {
    check_linear_shape(p.shape);  // every listed shape is one a backend takes
    EXPECT_TRUE(w.has(p.weight)) << p.weight;
  }
}
