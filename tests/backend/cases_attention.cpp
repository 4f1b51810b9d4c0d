// Suite cases for attention and what surrounds it: the attention op with key masks and
// log-sum-exp (head sizes 64 / 128 for the fused kernels, 32 and wide single heads for the
// fallbacks), grouped-query heads, causal masks at the text encoders' shapes, the rotary
// embedding in both pair layouts and over runs of tokens, and the sequence-parallel helpers
// (Ulysses head packing, Ring merge by log-sum-exp). Tolerance 1e-2 relative L2 (bf16
// products).
#include <cmath>

#include "backend/rope_table.h"
#include "op_suite.h"

namespace raylight::suite {
namespace {

constexpr double kPointwise = 5e-3, kReduction = 1e-2;

struct Attn {
  int64_t Lq, Lk, H, D, valid;
};

std::string attn_name(const Attn& a) {
  return fmt("Lq=%lld Lk=%lld H=%lld D=%lld valid=%lld", (long long)a.Lq, (long long)a.Lk, (long long)a.H,
             (long long)a.D, (long long)a.valid);
}

void attention(std::vector<OpCase>& cs) {
  for (Attn a : {Attn{1, 1, 1, 64, -1}, {37, 53, 3, 64, 40}, {200, 512, 2, 128, -1}, {129, 300, 4, 128, 257},
                 {500, 500, 2, 128, -1}, {64, 64, 1, 128, 1}, {300, 77, 2, 64, 70}, {45, 33, 2, 32, 20},
                 {333, 512, 3, 128, 7}, {77, 512, 5, 128, 512}, {0, 16, 2, 64, -1},
                 // one wide head: the VAE's middle attention (head size = channels)
                 {7, 7, 1, 32, -1}, {100, 100, 1, 384, -1}, {333, 333, 1, 384, -1}, {64, 64, 1, 200, -1}}) {
    auto in = [a](Inputs& r) {
      return Tensors{r.randn({a.Lq, a.H, a.D}), r.randn({a.Lk, a.H, a.D}), r.randn({a.Lk, a.H, a.D})};
    };
    cs.push_back(make("attention", attn_name(a) + ", lse", kReduction, in, [a](Backend& be, const Tensors& t) {
      Tensor lse;
      Tensor o = be.attention(be.upload(t[0]), be.upload(t[1]), be.upload(t[2]), a.valid, &lse);
      return down(be, {o, lse});
    }));
    cs.push_back(make("attention", attn_name(a), kReduction, in, [a](Backend& be, const Tensors& t) {
      return down(be, {be.attention(be.upload(t[0]), be.upload(t[1]), be.upload(t[2]), a.valid, nullptr)});
    }));
  }
  // Grouped-query heads without a causal mask (each key/value head serves Hq / Hkv query
  // heads), through every kernel: head sizes 64 / 128 (fused), 32 (fallback).
  struct Gqa { int64_t Lq, Lk, Hq, Hkv, D, valid; };
  for (Gqa g : {Gqa{10, 14, 8, 2, 64, 12}, {37, 300, 28, 4, 128, -1}, {64, 77, 32, 8, 128, 70}, {9, 9, 6, 3, 32, -1}}) {
    cs.push_back(make("attention",
                      fmt("Lq=%lld Lk=%lld Hq=%lld Hkv=%lld D=%lld valid=%lld, lse", (long long)g.Lq, (long long)g.Lk,
                          (long long)g.Hq, (long long)g.Hkv, (long long)g.D, (long long)g.valid),
                      kReduction,
                      [g](Inputs& r) {
                        return Tensors{r.randn({g.Lq, g.Hq, g.D}), r.randn({g.Lk, g.Hkv, g.D}), r.randn({g.Lk, g.Hkv, g.D})};
                      },
                      [g](Backend& be, const Tensors& t) {
                        Tensor lse;
                        Tensor o = be.attention(be.upload(t[0]), be.upload(t[1]), be.upload(t[2]), g.valid, &lse);
                        return down(be, {o, lse});
                      }));
  }
  OpCase masked_all = make("attention", "refuses a mask that hides every key", 0,
                           [](Inputs& r) { return Tensors{r.randn({4, 1, 64})}; }, [](Backend& be, const Tensors& t) {
                             Tensor q = be.upload(t[0]);
                             be.attention(q, q, q, 0, nullptr);
                             return Tensors{};
                           });
  masked_all.refused = true;
  cs.push_back(masked_all);
  OpCase heads = make("attention", "refuses q and k with different head sizes", 0,
                      [](Inputs& r) { return Tensors{r.randn({4, 2, 64}), r.randn({4, 2, 32})}; },
                      [](Backend& be, const Tensors& t) {
                        be.attention(be.upload(t[0]), be.upload(t[1]), be.upload(t[1]), -1, nullptr);
                        return Tensors{};
                      });
  heads.refused = true;
  cs.push_back(heads);
}

// Causal self-attention of the text encoders: CLIP-L (77 tokens, 12 heads of 64),
// Qwen2.5-VL 7B (28 query / 4 key-value heads of 128), Llama-3 8B (32 / 8), prompts padded
// at the end (k_valid), odd lengths, one token, none.
void causal(std::vector<OpCase>& cs) {
  struct Causal { const char* what; int64_t L, Hq, Hkv, D, valid; };
  for (Causal c : {Causal{"CLIP-L", 77, 12, 12, 64, -1}, {"Qwen2.5-VL", 37, 28, 4, 128, 30},
                   {"Llama-3", 256, 32, 8, 128, 200}, {"one token", 1, 2, 1, 64, -1}, {"odd", 45, 3, 3, 80, 44},
                   {"long", 1100, 2, 1, 64, -1}, {"none", 0, 4, 2, 64, -1}}) {
    const std::string shape = fmt("%s: L=%lld Hq=%lld Hkv=%lld D=%lld valid=%lld", c.what, (long long)c.L,
                                  (long long)c.Hq, (long long)c.Hkv, (long long)c.D, (long long)c.valid);
    auto in = [c](Inputs& r) {
      return Tensors{r.randn({c.L, c.Hq, c.D}), r.randn({c.L, c.Hkv, c.D}), r.randn({c.L, c.Hkv, c.D})};
    };
    cs.push_back(make("causal_attention", shape + ", lse", kReduction, in, [c](Backend& be, const Tensors& t) {
      Tensor lse;
      Tensor o = be.causal_attention(be.upload(t[0]), be.upload(t[1]), be.upload(t[2]), c.valid, &lse);
      return down(be, {o, lse});
    }));
    cs.push_back(make("causal_attention", shape, kReduction, in, [c](Backend& be, const Tensors& t) {
      return down(be, {be.causal_attention(be.upload(t[0]), be.upload(t[1]), be.upload(t[2]), c.valid)});
    }));
  }
  OpCase lengths = make("causal_attention", "refuses more queries than keys", 0,
                        [](Inputs& r) { return Tensors{r.randn({5, 2, 64}), r.randn({4, 2, 64})}; },
                        [](Backend& be, const Tensors& t) {
                          be.causal_attention(be.upload(t[0]), be.upload(t[1]), be.upload(t[1]));
                          return Tensors{};
                        });
  lengths.refused = true;
  cs.push_back(lengths);
  OpCase groups = make("attention", "refuses query heads that are not a multiple of key heads", 0,
                       [](Inputs& r) { return Tensors{r.randn({4, 6, 64}), r.randn({4, 4, 64})}; },
                       [](Backend& be, const Tensors& t) {
                         be.attention(be.upload(t[0]), be.upload(t[1]), be.upload(t[1]), -1, nullptr);
                         return Tensors{};
                       });
  groups.refused = true;
  cs.push_back(groups);
}

void rope(std::vector<OpCase>& cs) {
  struct Grid { int64_t F, H, W, heads, D; };
  for (Grid g : {Grid{2, 3, 5, 3, 64}, {3, 4, 7, 2, 128}, {1, 1, 1, 1, 128}, {2, 2, 3, 2, 12}, {0, 2, 2, 2, 12}}) {
    const int64_t L = g.F * g.H * g.W;
    cs.push_back(make("apply_rope", fmt("Wan 3-D table, %lldx%lldx%lld tokens, %lld heads x %lld", (long long)g.F,
                                        (long long)g.H, (long long)g.W, (long long)g.heads, (long long)g.D),
                      kPointwise,
                      [g, L](Inputs& r) {
                        return Tensors{r.randn({L, g.heads, g.D}),
                                       rope_table_3d(g.F, g.H, g.W, wan_rope_axes(int(g.D)), 10000.0, 0, L)};
                      },
                      [](Backend& be, const Tensors& t) {
                        Tensor x = be.upload(t[0]);
                        be.apply_rope(x, t[1]);
                        return down(be, {x});
                      }));
  }
  // Llama / Qwen layout (pairs i, i + D/2) with 1-D position tables, over all tokens or a
  // run of them (a joint sequence's image tokens), and the Wan layout over a run.
  struct Run { RopePairs pairs; int64_t L, heads, D, first, n; double theta; };
  for (Run r : {Run{RopePairs::Halves, 37, 28, 128, 0, 37, 1e6}, {RopePairs::Halves, 20, 3, 64, 5, 9, 5e5},
                {RopePairs::Halves, 9, 2, 6, 8, 1, 1e4}, {RopePairs::Adjacent, 21, 2, 64, 7, 14, 1e4},
                {RopePairs::Adjacent, 12, 3, 24, 12, 0, 1e4}, {RopePairs::Halves, 0, 2, 64, 0, 0, 1e4}}) {
    cs.push_back(make("apply_rope",
                      fmt("%s, tokens [%lld, %lld) of %lld, %lld heads x %lld",
                          r.pairs == RopePairs::Halves ? "rotate-half" : "adjacent pairs", (long long)r.first,
                          (long long)(r.first + r.n), (long long)r.L, (long long)r.heads, (long long)r.D),
                      kPointwise,
                      [r](Inputs& in) {
                        return Tensors{in.randn({r.L, r.heads, r.D}), rope_table_1d(3, r.n, int(r.D), r.theta)};
                      },
                      [r](Backend& be, const Tensors& t) {
                        Tensor x = be.upload(t[0]);
                        be.apply_rope(x, t[1], r.pairs, r.first);
                        return down(be, {x});
                      }));
  }
  OpCase past_end = make("apply_rope", "refuses a run past the last token", 0,
                         [](Inputs& r) { return Tensors{r.randn({6, 2, 12}), rope_table_1d(0, 4, 12, 1e4)}; },
                         [](Backend& be, const Tensors& t) {
                           Tensor x = be.upload(t[0]);
                           be.apply_rope(x, t[1], RopePairs::Halves, 3);
                           return Tensors{};
                         });
  past_end.refused = true;
  cs.push_back(past_end);
  OpCase wrong = make("apply_rope", "refuses a table for more tokens than x has", 0,
                      [](Inputs& r) { return Tensors{r.randn({4, 2, 12}), rope_table_3d(1, 1, 5, wan_rope_axes(12), 1e4, 0, 5)}; },
                      [](Backend& be, const Tensors& t) {
                        Tensor x = be.upload(t[0]);
                        be.apply_rope(x, t[1]);
                        return Tensors{};
                      });
  wrong.refused = true;
  cs.push_back(wrong);
}

void sequence_helpers(std::vector<OpCase>& cs) {
  for (Shape s : {Shape{4, 3, 10}, Shape{7, 5, 2, 64}, Shape{1, 9, 3}, Shape{0, 3, 4}}) {
    cs.push_back(make("swap_leading", shape_str(s), 0, [s](Inputs& r) { return Tensors{r.randn(s)}; },
                      [](Backend& be, const Tensors& t) { return down(be, {be.swap_leading(be.upload(t[0]))}); }));
  }
  // Two partial results with their lse (as Ring attention holds them) folded into one.
  for (auto [L, H, D] : {std::tuple<int64_t, int64_t, int64_t>{37, 3, 64}, {5, 1, 7}, {128, 12, 128}}) {
    cs.push_back(make("merge_attention", fmt("L=%lld H=%lld D=%lld", (long long)L, (long long)H, (long long)D),
                      kPointwise,
                      [L, H, D](Inputs& r) {
                        return Tensors{r.randn({L, H, D}), r.randn({H, L}, 2.0f, 3.0f), r.randn({L, H, D}),
                                       r.randn({H, L}, 2.0f, 3.0f)};
                      },
                      [](Backend& be, const Tensors& t) {
                        Tensor out = be.upload(t[0]), lse = upload_f32(be, t[1]);
                        be.merge_attention(out, lse, be.upload(t[2]), upload_f32(be, t[3]));
                        return down(be, {out, lse});
                      }));
  }
  // The property Ring attention relies on, through the backend: attention over keys [A|B]
  // equals attention over A merged with attention over B.
  cs.push_back(make("merge_attention", "of attention over two key blocks", kReduction,
                    [](Inputs& r) { return Tensors{r.randn({130, 3, 128}), r.randn({300, 3, 128}), r.randn({300, 3, 128})}; },
                    [](Backend& be, const Tensors& t) {
                      Tensor l1, l2;
                      Tensor q = be.upload(t[0]);
                      Tensor o1 = be.attention(q, be.upload(t[1].slice_rows(0, 170)), be.upload(t[2].slice_rows(0, 170)),
                                               -1, &l1);
                      Tensor o2 = be.attention(q, be.upload(t[1].slice_rows(170, 300)),
                                               be.upload(t[2].slice_rows(170, 300)), -1, &l2);
                      be.merge_attention(o1, l1, o2, l2);
                      return down(be, {o1, be.attention(q, be.upload(t[1]), be.upload(t[2]), -1, nullptr)});
                    }));
}

}  // namespace

std::vector<OpCase> attention_cases() {
  std::vector<OpCase> cs;
  attention(cs);
  causal(cs);
  rope(cs);
  sequence_helpers(cs);
  return cs;
}

}  // namespace raylight::suite
