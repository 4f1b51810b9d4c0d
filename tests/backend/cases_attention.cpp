// Suite cases for attention and what surrounds it: the attention op with key masks and
// log-sum-exp (head sizes 64 / 128 for the fused kernels, 32 and wide single heads for the
// fallbacks), the rotary embedding, and the sequence-parallel helpers (Ulysses head
// packing, Ring merge by log-sum-exp). Tolerance 1e-2 relative L2 (bf16 products).
#include <cmath>

#include "backend/rope_table.h"
#include "op_suite.h"

namespace raylight::suite {
namespace {

constexpr double kPointwise = 5e-3, kReduction = 1e-2;

OpCase make(std::string op, std::string shape, double tol, std::function<Tensors(Inputs&)> in,
            std::function<Tensors(Backend&, const Tensors&)> run) {
  OpCase c;
  c.op = std::move(op);
  c.shape = std::move(shape);
  c.tolerance = tol;
  c.inputs = std::move(in);
  c.run = std::move(run);
  return c;
}

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
  OpCase wrong = make("apply_rope", "refuses a table for other tokens", 0,
                      [](Inputs& r) { return Tensors{r.randn({6, 2, 12}), rope_table_3d(1, 1, 5, wan_rope_axes(12), 1e4, 0, 5)}; },
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
  rope(cs);
  sequence_helpers(cs);
  return cs;
}

}  // namespace raylight::suite
