// Suite cases for the norms' absmax output (dit_ops.h: layer_norm_modulate and
// add_gated_layer_norm with `absmax`) and the products that take it (backend.h: x_absmax of
// linear, linear_gelu_tanh, linears). Each norm case returns the result, its absmax, and a
// check that the absmax is exactly max |result| over the values as stored on that backend
// (0 when it is, NaN when not: a non-finite output fails the case on either side). Shapes:
// Wan's rows (fp32 residual and modulation into bf16), Flux's bf16, an odd width off the
// vector path, many rows (many blocks meet in one atomic maximum), a negative extreme, no
// rows; add_gated_layer_norm also through the two-pass path (a bf16 gate with fp32
// modulation). Products: fp8 and bf16 weights over a norm's output given its absmax (the
// result must be the product's own), and refused absmax operands (shape, dtype), on every
// backend (the CPU ignores a well-formed one, but checks it all the same).
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "op_suite.h"

namespace raylight::suite {
namespace {

constexpr double kPointwise = 5e-3, kReduction = 1e-2, kFp8 = 5e-2;

Tensors with_absmax(Backend& be, const Tensor& out, const Tensor& absmax) {
  Tensors t = down(be, {out, absmax});
  t.push_back(absmax_check(t[0], t[1]));
  return t;
}

Tensor precise(Backend& be, const Tensor& h, bool f32) { return f32 ? be.upload_f32(h) : be.upload(h); }

void layer_norm_modulate_cases(std::vector<OpCase>& cs) {
  // f32x / f32mod: the residual / the modulation kept in fp32 (Wan); neg: one shift of -40
  // makes the extreme negative; f32out: an fp32 result (its absmax is of fp32 values).
  struct Case { int64_t M, D; bool f32x, f32mod, neg, f32out; const char* what; };
  for (Case c : {Case{7, 1536, true, true, false, false, "Wan: fp32 x and modulation"},
                 {9, 3072, false, false, false, false, "Flux: bf16"},
                 {5, 37, true, false, false, false, "odd width, bf16 modulation"},
                 {300, 64, true, true, false, false, "many rows"},
                 {6, 128, true, true, true, false, "a negative extreme"},
                 {4, 96, true, true, false, true, "fp32 result"},
                 {0, 64, true, true, false, false, "no rows"}}) {
    cs.push_back(make(
        "layer_norm_modulate", fmt("absmax, M=%lld D=%lld, %s", (long long)c.M, (long long)c.D, c.what),
        c.f32out ? 1e-5 : kPointwise,
        [c](Inputs& r) {
          Tensors t{r.randn({c.M, c.D}, 2.0f, 0.5f), r.randn({c.D}, 0.3f), r.randn({c.D}, 0.3f)};
          if (c.neg) t[1].f32()[c.D / 3] = -40.0f;
          return t;
        },
        [c](Backend& be, const Tensors& t) {
          Tensor absmax;
          const Tensor out = be.layer_norm_modulate(precise(be, t[0], c.f32x), precise(be, t[1], c.f32mod),
                                                    precise(be, t[2], c.f32mod), 1e-6f, c.f32out, &absmax);
          return with_absmax(be, out, absmax);
        }));
  }
}

void add_gated_layer_norm_cases(std::vector<OpCase>& cs) {
  struct Case { int64_t M, D; bool gate, affine, mod, f32x, f32mod, mixed; const char* what; };
  for (Case c : {Case{7, 1536, true, true, false, true, true, false, "Wan norm3: fp32 gate, affine"},
                 {5, 1536, false, false, true, true, true, false, "Wan: plain add, fp32 modulation"},
                 {9, 3072, true, false, true, false, false, false, "Flux: gated, modulated, bf16"},
                 {6, 37, true, true, true, false, false, false, "odd width"},
                 {4, 64, true, false, true, true, true, true, "bf16 gate, fp32 modulation (two passes)"},
                 {257, 128, true, false, true, true, true, false, "many rows"},
                 {0, 64, true, false, true, true, true, false, "no rows"}}) {
    cs.push_back(make(
        "add_gated_layer_norm", fmt("absmax, M=%lld D=%lld, %s", (long long)c.M, (long long)c.D, c.what), kPointwise,
        [c](Inputs& r) {
          return Tensors{r.randn({c.M, c.D}, 2.0f, 0.5f), r.randn({c.M, c.D}), r.randn({c.D}, 0.5f),
                         r.randn({c.D}, 0.1f, 1.0f), r.randn({c.D}, 0.1f), r.randn({c.D}, 0.3f), r.randn({c.D}, 0.3f)};
        },
        [c](Backend& be, const Tensors& t) {
          Tensor x = precise(be, t[0], c.f32x);
          const Tensor gate = c.gate ? precise(be, t[2], c.f32mod && !c.mixed) : Tensor();
          const Tensor w = c.affine ? be.upload(t[3]) : Tensor(), b = c.affine ? be.upload(t[4]) : Tensor();
          const Tensor shift = c.mod ? precise(be, t[5], c.f32mod) : Tensor();
          const Tensor scale = c.mod ? precise(be, t[6], c.f32mod) : Tensor();
          Tensor absmax;
          const Tensor out = be.add_gated_layer_norm(x, be.upload(t[1]), gate, w, b, shift, scale, 1e-6f, &absmax);
          return with_absmax(be, out, absmax);
        }));
  }
}

// A norm's output through each product, given its absmax: the products' own results.
void product_cases(std::vector<OpCase>& cs) {
  struct Case { int64_t M, K, N; bool fp8; };
  for (Case c : {Case{33, 256, 96, true}, {17, 64, 48, false}, {0, 64, 32, true}}) {
    const std::string shape = fmt("given the norm's absmax, M=%lld K=%lld N=%lld, %s weights", (long long)c.M,
                                  (long long)c.K, (long long)c.N, c.fp8 ? "fp8" : "bf16");
    auto in = [c](Inputs& r) {
      const float s = 1.0f / std::sqrt(float(c.K));
      return Tensors{r.randn({c.M, c.K}, 2.0f, 0.5f), r.randn({c.K}, 0.3f), r.randn({c.K}, 0.3f),
                     r.randn({c.N, c.K}, s), r.randn({c.N, c.K}, s), r.randn({c.N}, 0.1f)};
    };
    const float wscale = 4.5f / std::sqrt(float(c.K)) / 448.0f;
    auto weight = [c, wscale](Backend& be, const Tensor& w) {
      return c.fp8 ? be.weight(fp8_codes(w, wscale), wscale) : be.weight(w, 1.0f);
    };
    // The norm as Wan runs it: fp32 residual and modulation into the product's operand.
    auto normed = [](Backend& be, const Tensors& t, Tensor* absmax) {
      return be.layer_norm_modulate(be.upload_f32(t[0]), be.upload_f32(t[1]), be.upload_f32(t[2]), 1e-6f, false,
                                    absmax);
    };
    const double tol = c.fp8 ? kFp8 : kReduction;
    cs.push_back(make("linear", shape, tol, in, [=](Backend& be, const Tensors& t) {
      Tensor absmax;
      const Tensor h = normed(be, t, &absmax);
      return down(be, {be.linear(h, weight(be, t[3]), be.upload(t[5]), absmax)});
    }));
    cs.push_back(make("linear_gelu_tanh", shape, tol, in, [=](Backend& be, const Tensors& t) {
      Tensor absmax;
      const Tensor h = normed(be, t, &absmax);
      return down(be, {be.linear_gelu_tanh(h, weight(be, t[3]), be.upload(t[5]), absmax)});
    }));
    cs.push_back(make("linears", shape, tol, in, [=](Backend& be, const Tensors& t) {
      Tensor absmax;
      const Tensor h = normed(be, t, &absmax);
      const std::vector<Tensor> y =
          be.linears(h, {{weight(be, t[3]), be.upload(t[5])}, {weight(be, t[4]), {}, true}}, absmax);
      return down(be, {y[0], y[1]});
    }));
  }
}

// An absmax operand that is not one fp32 element on the device is refused by every product.
void refused_cases(std::vector<OpCase>& cs) {
  auto in = [](Inputs& r) { return Tensors{r.randn({3, 16}), r.randn({8, 16}), r.randn({2}, 1.0f, 4.0f)}; };
  struct Bad { const char* what; int kind; };
  for (Bad bad : {Bad{"an input absmax of two elements", 0}, {"an input absmax of no elements", 1},
                  {"an input absmax of one byte", 2}}) {
    auto absmax = [bad](Backend& be, const Tensor& host2) -> Tensor {
      switch (bad.kind) {
        case 0: return be.upload_f32(host2);
        case 1: return be.empty_f32({0});
        default: return be.device_bytes(1);  // U8 [1]: one element of the wrong dtype
      }
    };
    cs.push_back(refuse("linear", bad.what, in, [absmax](Backend& be, const Tensors& t) {
      be.linear(be.upload(t[0]), be.weight(t[1], 1.0f), {}, absmax(be, t[2]));
    }));
    cs.push_back(refuse("linear_gelu_tanh", bad.what, in, [absmax](Backend& be, const Tensors& t) {
      be.linear_gelu_tanh(be.upload(t[0]), be.weight(t[1], 1.0f), {}, absmax(be, t[2]));
    }));
    cs.push_back(refuse("linears", bad.what, in, [absmax](Backend& be, const Tensors& t) {
      be.linears(be.upload(t[0]), {{be.weight(t[1], 1.0f), {}}}, absmax(be, t[2]));
    }));
  }
  // The same check where the product's input has no rows (answered before any backend work).
  cs.push_back(refuse("linears", "an input absmax of two elements, no rows",
                      [](Inputs& r) { return Tensors{r.randn({0, 16}), r.randn({8, 16}), r.randn({2})}; },
                      [](Backend& be, const Tensors& t) {
                        be.linears(be.upload(t[0]), {{be.weight(t[1], 1.0f), {}}}, be.upload_f32(t[2]));
                      }));
}

}  // namespace

std::vector<OpCase> norm_absmax_cases() {
  std::vector<OpCase> cs;
  layer_norm_modulate_cases(cs);
  add_gated_layer_norm_cases(cs);
  product_cases(cs);
  refused_cases(cs);
  return cs;
}

}  // namespace raylight::suite
