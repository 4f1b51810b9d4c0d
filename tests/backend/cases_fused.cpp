// Suite cases for the fused attention-operand ops: q/k RMSNorm + RoPE + the q/k/v split of a
// fused product (qkv_norm_rope: Flux's per-head QKNorm; Wan's whole-row norm too) written at
// row offsets of a joint buffer, and the single-product form (norm_rope: Wan's q and k).
// Shapes: Flux's 24 heads x 128, Wan 1.3B's 12 x 128, head sizes off the vector path (6, 12),
// no table, empty rows, refused operands. Tolerance: pointwise (bf16 outputs, 5e-3). And the
// product over two inputs side by side (linear_pair: Flux's linear2 over [attention | mlp])
// with bf16 and fp8 weights, reductions' tolerances (1e-2, fp8 5e-2). And a gated residual
// fused with the next LayerNorm (add_gated_layer_norm) in the dtypes DiTs keep: bf16 (Flux),
// fp32 residual and modulation (Wan). And several products over one input (linears).
#include <cmath>
#include <string>
#include <vector>

#include "backend/rope_table.h"
#include "op_suite.h"

namespace raylight::suite {
namespace {

constexpr double kPointwise = 5e-3, kReduction = 1e-2, kFp8 = 5e-2;

// A table for L tokens of a 1 x h x w grid (L = h * w) with Wan's axis split of head_dim D.
Tensor grid_table(int64_t h, int64_t w, int64_t D) { return rope_table_3d(1, h, w, wan_rope_axes(int(D)), 1e4, 0, h * w); }

void qkv_cases(std::vector<OpCase>& cs) {
  // Two segments (text rows, then image rows) land in one [L, H, D] buffer: the first at row
  // 0, the second at row `split`; together they cover every row.
  struct Joint { int64_t h, w, split, heads, D; QkNormSpan span; bool table; };
  for (Joint j : {Joint{4, 9, 7, 24, 128, QkNormSpan::Head, true}, {3, 5, 0, 3, 64, QkNormSpan::Head, true},
                  {2, 3, 6, 12, 128, QkNormSpan::Row, true}, {3, 4, 5, 3, 12, QkNormSpan::Head, true},
                  {2, 5, 3, 2, 6, QkNormSpan::Row, true}, {3, 3, 4, 4, 64, QkNormSpan::Head, false}}) {
    const int64_t L = j.h * j.w, HD = j.heads * j.D, n = j.span == QkNormSpan::Head ? j.D : HD;
    cs.push_back(make(
        "qkv_norm_rope",
        fmt("%lld + %lld rows, %lld heads x %lld, %s norm%s", (long long)j.split, (long long)(L - j.split),
            (long long)j.heads, (long long)j.D, j.span == QkNormSpan::Head ? "per-head" : "row",
            j.table ? "" : ", no table"),
        kPointwise,
        [j, L, HD, n](Inputs& r) {
          return Tensors{r.randn({j.split, 3 * HD}, 2.0f, 0.3f), r.randn({L - j.split, 3 * HD}, 2.0f, -0.2f),
                         r.randn({n}, 0.2f, 1.0f), r.randn({n}, 0.2f, 1.0f),
                         j.table ? grid_table(j.h, j.w, j.D) : Tensor()};
        },
        [j, L](Backend& be, const Tensors& t) {
          Tensor q = be.empty({L, j.heads, j.D}), k = be.empty({L, j.heads, j.D}), v = be.empty({L, j.heads, j.D});
          const Tensor qw = be.upload(t[2]), kw = be.upload(t[3]);
          be.qkv_norm_rope(be.upload(t[0]), qw, kw, j.span, 1e-6f, t[4], q, k, v, 0);
          be.qkv_norm_rope(be.upload(t[1]), qw, kw, j.span, 1e-6f, t[4], q, k, v, j.split);
          return down(be, {q, k, v});
        }));
  }
  auto in = [](Inputs& r) {
    return Tensors{r.randn({4, 3 * 2 * 8}), r.randn({8}), r.randn({8}), grid_table(2, 3, 8)};
  };
  cs.push_back(refuse("qkv_norm_rope", "rows past the end of q", in, [](Backend& be, const Tensors& t) {
    Tensor q = be.empty({6, 2, 8}), k = be.empty({6, 2, 8}), v = be.empty({6, 2, 8});
    be.qkv_norm_rope(be.upload(t[0]), be.upload(t[1]), be.upload(t[2]), QkNormSpan::Head, 1e-6f, t[3], q, k, v, 3);
  }));
  cs.push_back(refuse("qkv_norm_rope", "a product that is not q | k | v", in, [](Backend& be, const Tensors& t) {
    Tensor q = be.empty({6, 3, 8}), k = be.empty({6, 3, 8}), v = be.empty({6, 3, 8});
    be.qkv_norm_rope(be.upload(t[0]), be.upload(t[1]), be.upload(t[2]), QkNormSpan::Head, 1e-6f, {}, q, k, v, 0);
  }));
  cs.push_back(refuse("qkv_norm_rope", "a table for other rows", in, [](Backend& be, const Tensors& t) {
    Tensor q = be.empty({4, 2, 8}), k = be.empty({4, 2, 8}), v = be.empty({4, 2, 8});
    be.qkv_norm_rope(be.upload(t[0]), be.upload(t[1]), be.upload(t[2]), QkNormSpan::Head, 1e-6f, t[3], q, k, v, 0);
  }));
  cs.push_back(refuse("qkv_norm_rope", "a row-norm weight of one head", in, [](Backend& be, const Tensors& t) {
    Tensor q = be.empty({6, 2, 8}), k = be.empty({6, 2, 8}), v = be.empty({6, 2, 8});
    be.qkv_norm_rope(be.upload(t[0]), be.upload(t[1]), be.upload(t[2]), QkNormSpan::Row, 1e-6f, t[3], q, k, v, 0);
  }));
  cs.push_back(refuse("qkv_norm_rope", "q and k in one buffer", in, [](Backend& be, const Tensors& t) {
    Tensor q = be.empty({6, 2, 8}), v = be.empty({6, 2, 8});
    be.qkv_norm_rope(be.upload(t[0]), be.upload(t[1]), be.upload(t[2]), QkNormSpan::Head, 1e-6f, t[3], q, q, v, 0);
  }));
}

void norm_rope_cases(std::vector<OpCase>& cs) {
  struct Shape1 { int64_t h, w, heads, D; QkNormSpan span; bool table; };
  for (Shape1 s : {Shape1{3, 11, 12, 128, QkNormSpan::Row, true}, {2, 7, 24, 128, QkNormSpan::Head, true},
                   {5, 4, 40, 128, QkNormSpan::Row, true}, {2, 3, 3, 6, QkNormSpan::Row, true},
                   {3, 3, 2, 64, QkNormSpan::Row, false}, {0, 3, 2, 64, QkNormSpan::Row, true},
                   // CUDA's register kernel: two chunks a thread (rows over 8,192 values), a
                   // head over 32 / 8 lanes; head_dim 96 (12 lanes) takes the shared-memory one.
                   {2, 3, 72, 128, QkNormSpan::Row, true}, {2, 5, 6, 256, QkNormSpan::Head, true},
                   {2, 2, 9, 64, QkNormSpan::Head, true}, {3, 2, 10, 96, QkNormSpan::Head, true}}) {
    const int64_t L = s.h * s.w, HD = s.heads * s.D, n = s.span == QkNormSpan::Head ? s.D : HD;
    cs.push_back(make("norm_rope",
                      fmt("%lld rows, %lld heads x %lld, %s norm%s", (long long)L, (long long)s.heads, (long long)s.D,
                          s.span == QkNormSpan::Head ? "per-head" : "row", s.table ? "" : ", no table"),
                      kPointwise,
                      [s, L, HD, n](Inputs& r) {
                        return Tensors{r.randn({L, HD}, 1.5f, 0.1f), r.randn({n}, 0.2f, 1.0f),
                                       s.table ? grid_table(s.h, s.w, s.D) : Tensor()};
                      },
                      [s](Backend& be, const Tensors& t) {
                        return down(be, {be.norm_rope(be.upload(t[0]), be.upload(t[1]), s.span, 1e-6f, t[2], s.heads)});
                      }));
  }
  cs.push_back(refuse("norm_rope", "heads that do not divide the row",
                      [](Inputs& r) { return Tensors{r.randn({4, 30}), r.randn({30})}; },
                      [](Backend& be, const Tensors& t) {
                        be.norm_rope(be.upload(t[0]), be.upload(t[1]), QkNormSpan::Row, 1e-6f, {}, 4);
                      }));
  cs.push_back(refuse("norm_rope", "an odd head_dim",
                      [](Inputs& r) { return Tensors{r.randn({4, 30}), r.randn({30})}; },
                      [](Backend& be, const Tensors& t) {
                        be.norm_rope(be.upload(t[0]), be.upload(t[1]), QkNormSpan::Row, 1e-6f, {}, 2);
                      }));
}

// fp8 e4m3 codes' scale for N(0, 1/K) weights (values up to 4.5 std representable).
float fp8_scale(int64_t K) { return 4.5f / std::sqrt(float(K)) / 448.0f; }

void linear_pair_cases(std::vector<OpCase>& cs) {
  struct Pair { int64_t M, Ka, Kb, N; bool bias, fp8; };
  for (Pair p : {Pair{7, 13, 5, 9, true, false}, {65, 128, 512, 128, false, false}, {33, 64, 256, 48, true, true},
                 {130, 3072 / 8, 12288 / 8, 3072 / 8, true, true}, {5, 48, 16, 32, true, true},
                 {0, 16, 16, 8, true, false}}) {
    const int64_t K = p.Ka + p.Kb;
    cs.push_back(make("linear_pair",
                      fmt("M=%lld Ka=%lld Kb=%lld N=%lld%s%s", (long long)p.M, (long long)p.Ka, (long long)p.Kb,
                          (long long)p.N, p.bias ? ", bias" : "", p.fp8 ? ", fp8 e4m3 weight" : ""),
                      p.fp8 ? kFp8 : kReduction,
                      [p, K](Inputs& r) {
                        return Tensors{r.randn({p.M, p.Ka}), r.randn({p.M, p.Kb}),
                                       r.randn({p.N, K}, 1.0f / std::sqrt(float(K))), r.randn({p.N}, 0.1f)};
                      },
                      [p, K](Backend& be, const Tensors& t) {
                        const float scale = fp8_scale(K);
                        const Tensor w = p.fp8 ? be.weight(fp8_codes(t[2], scale), scale) : be.weight(t[2], 1.0f);
                        const Tensor bias = p.bias ? be.weight(t[3], 1.0f) : Tensor();
                        return down(be, {be.linear_pair(be.upload(t[0]), be.upload(t[1]), w, bias)});
                      }));
  }
  cs.push_back(refuse("linear_pair", "inputs wider than the weight",
                      [](Inputs& r) { return Tensors{r.randn({3, 4}), r.randn({3, 5}), r.randn({6, 8})}; },
                      [](Backend& be, const Tensors& t) {
                        be.linear_pair(be.upload(t[0]), be.upload(t[1]), be.weight(t[2], 1.0f), {});
                      }));
  cs.push_back(refuse("linear_pair", "inputs of different row counts",
                      [](Inputs& r) { return Tensors{r.randn({3, 4}), r.randn({2, 4}), r.randn({6, 8})}; },
                      [](Backend& be, const Tensors& t) {
                        be.linear_pair(be.upload(t[0]), be.upload(t[1]), be.weight(t[2], 1.0f), {});
                      }));
}

// Several products over one input (linears: a GPU quantises x once for every fp8 weight).
// Each term: N outputs, fp8 or bf16 weight, bias, GELU. Wan's q/k/v (three fp8 products with
// bias), T5's gelu gate beside its up product, mixed weight dtypes, an fp8 weight whose N is
// off cuBLASLt's fp8 alignment (that one dequantises while the others share the codes), and
// products large enough that a GPU times its kernel candidates first (gemm.h).
struct Term { int64_t N; bool fp8, bias, gelu; };

std::string term_names(const std::vector<Term>& ts) {
  std::string s;
  for (const Term& t : ts)
    s += fmt(" [N=%lld%s%s%s]", (long long)t.N, t.fp8 ? " fp8" : "", t.bias ? " bias" : "", t.gelu ? " gelu" : "");
  return s;
}

void linears_cases(std::vector<OpCase>& cs) {
  struct Group { int64_t M, K; std::vector<Term> terms; };
  const std::vector<Group> groups = {
      {7, 13, {{5, false, true, false}, {9, false, false, true}, {3, false, true, false}}},
      {33, 64, {{32, true, true, false}, {48, true, false, true}, {16, true, true, false}}},
      {257, 1536, {{1536, true, true, false}, {1536, true, true, false}, {1536, true, true, false}}},
      {65, 128, {{128, true, false, false}, {64, false, true, false}, {96, true, true, true}}},
      {19, 48, {{8, true, true, false}, {32, true, true, false}}},
      {1, 256, {{96, true, false, true}, {96, false, false, false}}},
      {0, 16, {{8, true, true, false}, {16, false, false, false}}},
      // M*N*K >= 2^32: a GPU times cuBLASLt's candidates on the first call of each plan.
      {2048, 1536, {{1536, true, true, false}, {1536, true, true, true}}},
  };
  for (const Group& g : groups) {
    bool any_fp8 = false;
    for (const Term& t : g.terms) any_fp8 |= t.fp8;
    cs.push_back(make("linears", fmt("M=%lld K=%lld", (long long)g.M, (long long)g.K) + term_names(g.terms),
                      any_fp8 ? kFp8 : kReduction,
                      [g](Inputs& r) {
                        Tensors t{r.randn({g.M, g.K})};
                        for (const Term& term : g.terms) {
                          t.push_back(r.randn({term.N, g.K}, 1.0f / std::sqrt(float(g.K))));
                          t.push_back(r.randn({term.N}, 0.1f));
                        }
                        return t;
                      },
                      [g](Backend& be, const Tensors& t) {
                        std::vector<LinearTerm> terms;
                        for (size_t i = 0; i < g.terms.size(); ++i) {
                          const Term& term = g.terms[i];
                          const float scale = fp8_scale(g.K);
                          const Tensor& w = t[1 + 2 * i];
                          terms.push_back({term.fp8 ? be.weight(fp8_codes(w, scale), scale) : be.weight(w, 1.0f),
                                           term.bias ? be.weight(t[2 + 2 * i], 1.0f) : Tensor(), term.gelu});
                        }
                        Tensors out;
                        for (const Tensor& y : be.linears(be.upload(t[0]), terms)) out.push_back(be.download(y));
                        return out;
                      }));
  }
  cs.push_back(refuse("linears", "no weights", [](Inputs& r) { return Tensors{r.randn({2, 3})}; },
                      [](Backend& be, const Tensors& t) { be.linears(be.upload(t[0]), {}); }));
  cs.push_back(refuse("linears", "a second weight of another input width",
                      [](Inputs& r) { return Tensors{r.randn({2, 8}), r.randn({4, 8}), r.randn({4, 5})}; },
                      [](Backend& be, const Tensors& t) {
                        be.linears(be.upload(t[0]), {{be.weight(t[1], 1.0f), {}}, {be.weight(t[2], 1.0f), {}}});
                      }));
  cs.push_back(refuse("linears", "a bias of the wrong size",
                      [](Inputs& r) { return Tensors{r.randn({2, 8}), r.randn({4, 8}), r.randn({4, 8}), r.randn({5})}; },
                      [](Backend& be, const Tensors& t) {
                        be.linears(be.upload(t[0]),
                                   {{be.weight(t[1], 1.0f), {}}, {be.weight(t[2], 1.0f), be.weight(t[3], 1.0f)}});
                      }));
}

// {out, x, absmax} -> {out, x, check}: the absmax held exactly to this backend's own output
// (op_suite.h's absmax_check) rather than to the CPU's, whose largest value may sit one bf16
// step away (seen on an H200: 0.502 % where a step is 0.39-0.78 %).
Tensors with_absmax_check(Tensors t) {
  t[2] = absmax_check(t[0], t[2]);
  return t;
}

void add_gated_layer_norm_cases(std::vector<OpCase>& cs) {
  // f32x: the residual kept in fp32 (Wan); f32mod: gate and modulation fp32; mixed: a bf16
  // gate with fp32 modulation (a backend may take two passes then).
  struct Case { int64_t M, D; bool gate, affine, mod, f32x, f32mod, mixed; const char* what; };
  for (Case c : {Case{9, 3072, true, false, true, false, false, false, "Flux: gated, modulated, bf16"},
                 {7, 1536, true, true, false, true, true, false, "Wan norm3: fp32 residual, fp32 gate, affine"},
                 {5, 1536, false, false, true, true, true, false, "Wan: plain add, fp32 modulation"},
                 {6, 37, true, true, true, false, false, false, "odd width, affine and modulated"},
                 {4, 64, true, false, true, true, true, true, "bf16 gate, fp32 modulation"},
                 {0, 64, true, false, true, false, false, false, "no rows"}}) {
    cs.push_back(make(
        "add_gated_layer_norm", fmt("M=%lld D=%lld, %s", (long long)c.M, (long long)c.D, c.what), kPointwise,
        [c](Inputs& r) {
          return Tensors{r.randn({c.M, c.D}, 2.0f, 0.5f), r.randn({c.M, c.D}), r.randn({c.D}, 0.5f),
                         r.randn({c.D}, 0.1f, 1.0f), r.randn({c.D}, 0.1f), r.randn({c.D}, 0.3f), r.randn({c.D}, 0.3f)};
        },
        [c](Backend& be, const Tensors& t) {
          auto precise = [&](const Tensor& h, bool f32) { return f32 ? be.upload_f32(h) : be.upload(h); };
          Tensor x = precise(t[0], c.f32x);
          const Tensor gate = c.gate ? precise(t[2], c.f32mod && !c.mixed) : Tensor();
          const Tensor w = c.affine ? be.upload(t[3]) : Tensor(), b = c.affine ? be.upload(t[4]) : Tensor();
          const Tensor shift = c.mod ? precise(t[5], c.f32mod) : Tensor(), scale = c.mod ? precise(t[6], c.f32mod) : Tensor();
          const Tensor out = be.add_gated_layer_norm(x, be.upload(t[1]), gate, w, b, shift, scale, 1e-6f);
          return down(be, {out, x});
        }));
  }
  // A Wan block's pair: norm3 of x + sa * gate without storing the sum (x must come back as
  // it went in), then both updates into x with the next norm (sa, then the cross-attention's
  // plain add); and the same shapes in the other dtypes.
  struct Pair { int64_t M, D; bool affine, mod, f32x, f32mod, mixed, gate2; const char* what; };
  for (Pair c : {Pair{7, 1536, true, true, true, true, false, false, "Wan: fp32 residual, gate and modulation"},
                 {9, 3072, false, true, false, false, false, true, "bf16 residual, both gated"},
                 {6, 37, true, true, false, false, false, true, "odd width, affine and modulated"},
                 {4, 64, false, true, true, true, true, false, "bf16 gate, fp32 modulation"},
                 {0, 64, false, true, true, true, false, false, "no rows"}}) {
    auto in = [c](Inputs& r) {
      return Tensors{r.randn({c.M, c.D}, 2.0f, 0.5f), r.randn({c.M, c.D}), r.randn({c.D}, 0.5f),
                     r.randn({c.D}, 0.1f, 1.0f),  r.randn({c.D}, 0.1f),  r.randn({c.D}, 0.3f),
                     r.randn({c.D}, 0.3f),        r.randn({c.M, c.D}), r.randn({c.D}, 0.5f)};
    };
    struct Operands {
      Tensor x, gate, w, b, shift, scale, gate2;
    };
    auto operands = [c](Backend& be, const Tensors& t) {
      auto precise = [&](const Tensor& h, bool f32) { return f32 ? be.upload_f32(h) : be.upload(h); };
      Operands o;
      o.x = precise(t[0], c.f32x);
      o.gate = precise(t[2], c.f32mod && !c.mixed);
      if (c.affine) o.w = be.upload(t[3]), o.b = be.upload(t[4]);
      if (c.mod) o.shift = precise(t[5], c.f32mod), o.scale = precise(t[6], c.f32mod);
      if (c.gate2) o.gate2 = precise(t[8], c.f32mod && !c.mixed);
      return o;
    };
    const std::string shape = fmt("M=%lld D=%lld, %s", (long long)c.M, (long long)c.D, c.what);
    cs.push_back(make("gated_sum_layer_norm", shape + ", x left as it is", kPointwise, in,
                      [operands](Backend& be, const Tensors& t) {
                        const Operands o = operands(be, t);
                        Tensor absmax;
                        const Tensor out = be.gated_sum_layer_norm(o.x, be.upload(t[1]), o.gate, o.w, o.b, o.shift,
                                                                   o.scale, 1e-6f, &absmax);
                        return with_absmax_check(down(be, {out, o.x, absmax}));
                      }));
    cs.push_back(make("add_gated_layer_norm", shape + ", two updates", kPointwise, in,
                      [operands](Backend& be, const Tensors& t) {
                        Operands o = operands(be, t);
                        Tensor absmax;
                        const Tensor out = be.add_gated_layer_norm(o.x, {be.upload(t[1]), o.gate},
                                                                   {be.upload(t[7]), o.gate2}, o.w, o.b, o.shift,
                                                                   o.scale, 1e-6f, &absmax);
                        return with_absmax_check(down(be, {out, o.x, absmax}));
                      }));
  }
  cs.push_back(refuse("add_gated_layer_norm", "a second addend of another shape",
                      [](Inputs& r) { return Tensors{r.randn({3, 8}), r.randn({3, 8}), r.randn({2, 8})}; },
                      [](Backend& be, const Tensors& t) {
                        Tensor x = be.upload(t[0]);
                        be.add_gated_layer_norm(x, {be.upload(t[1]), {}}, {be.upload(t[2]), {}}, {}, {}, {}, {}, 1e-6f);
                      }));
  cs.push_back(refuse("gated_sum_layer_norm", "an addend of another shape",
                      [](Inputs& r) { return Tensors{r.randn({3, 8}), r.randn({2, 8})}; },
                      [](Backend& be, const Tensors& t) {
                        be.gated_sum_layer_norm(be.upload(t[0]), be.upload(t[1]), {}, {}, {}, {}, {}, 1e-6f);
                      }));
  cs.push_back(refuse("add_gated_layer_norm", "a shift without a scale",
                      [](Inputs& r) { return Tensors{r.randn({3, 8}), r.randn({3, 8}), r.randn({8})}; },
                      [](Backend& be, const Tensors& t) {
                        Tensor x = be.upload(t[0]);
                        be.add_gated_layer_norm(x, be.upload(t[1]), {}, {}, {}, be.upload(t[2]), {}, 1e-6f);
                      }));
  cs.push_back(refuse("add_gated_layer_norm", "an addend of another shape",
                      [](Inputs& r) { return Tensors{r.randn({3, 8}), r.randn({2, 8})}; },
                      [](Backend& be, const Tensors& t) {
                        Tensor x = be.upload(t[0]);
                        be.add_gated_layer_norm(x, be.upload(t[1]), {}, {}, {}, {}, {}, 1e-6f);
                      }));
}

}  // namespace

std::vector<OpCase> fused_cases() {
  std::vector<OpCase> cs;
  qkv_cases(cs);
  norm_rope_cases(cs);
  linear_pair_cases(cs);
  linears_cases(cs);
  add_gated_layer_norm_cases(cs);
  return cs;
}

}  // namespace raylight::suite
