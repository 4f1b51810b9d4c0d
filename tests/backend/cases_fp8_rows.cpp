// Suite cases for rows held as fp8 codes (backend/fp8_rows.h): dequantise, and
// linear_fp8_rows against the CPU's dequantise-then-linear. The codes come from N(0, 1)
// values at the scale fp8 attention would give them (448 / 4.5 sigma); the offsets are
// column means of the size V's are. Shapes: odd sizes (no vector path, no fp8 GEMM), the
// multiples of 16 the fp8 GEMM takes, Wan 1.3B's width, empty batches; fp8 and bf16
// weights, with and without offset and bias; refused operands.
//
// Tolerance 1e-2 (a product's, cases_core.cpp): with fp8 weights the GPU multiplies the codes
// themselves (exact) by the exact weight codes, so only the bias (b + W offset, rounded to
// bf16) and the bf16 output round; the other paths dequantise to bf16 first (2^-9 per value).
// A dropped offset or scale is an error of order 1.
#include <cmath>

#include "backend/fp8_rows.h"
#include "op_suite.h"

namespace raylight::suite {
namespace {

constexpr double kReduction = 1e-2;
constexpr float kRowsScale = 4.5f / 448.0f;  // code * scale = value for N(0, 1) values

enum class Weight { Fp8, Bf16 };

// t[0] values [M, K] -> codes, t[1] offset [K] (used when `offset`).
Fp8Rows rows_on(Backend& be, const Tensors& t, bool offset) {
  return upload_fp8_rows(be, fp8_codes(t[0], kRowsScale), kRowsScale, offset ? t[1] : Tensor());
}

}  // namespace

std::vector<OpCase> fp8_rows_cases() {
  std::vector<OpCase> cs;
  struct Rc { int64_t M, K; };
  for (Rc s : {Rc{1, 1}, {7, 13}, {33, 64}, {100, 640}, {0, 16}}) {
    auto in = [s](Inputs& r) { return Tensors{r.randn({s.M, s.K}), r.randn({s.K}, 0.5f)}; };
    for (bool offset : {true, false})
      cs.push_back(make("dequantise", fmt("rows=%lld cols=%lld%s", (long long)s.M, (long long)s.K,
                                          offset ? ", column offset" : ""),
                        5e-3, in, [offset](Backend& be, const Tensors& t) {
                          return down(be, {be.dequantise(rows_on(be, t, offset))});
                        }));
  }

  struct Mkn { int64_t M, K, N; };
  for (Mkn s : {Mkn{1, 1, 1}, {7, 13, 5}, {5, 48, 16}, {33, 64, 48}, {17, 64, 40}, {257, 512, 384},
                {1000, 1536, 1536}, {0, 16, 8}}) {
    auto in = [s](Inputs& r) {
      return Tensors{r.randn({s.M, s.K}), r.randn({s.K}, 0.5f), r.randn({s.N, s.K}, 1.0f / std::sqrt(float(s.K))),
                     r.randn({s.N}, 0.1f)};
    };
    for (Weight wt : {Weight::Fp8, Weight::Bf16})
      for (bool offset : {true, false})
        for (bool bias : {true, false}) {
          if (wt == Weight::Bf16 && offset != bias) continue;  // bf16 weights: the dequantised path, twice is enough
          const std::string shape =
              fmt("M=%lld K=%lld N=%lld, %s weight%s%s", (long long)s.M, (long long)s.K, (long long)s.N,
                  wt == Weight::Fp8 ? "fp8 e4m3" : "bf16", offset ? ", column offset" : "", bias ? ", bias" : "");
          cs.push_back(make("linear_fp8_rows", shape, kReduction, in, [s, wt, offset, bias](Backend& be, const Tensors& t) {
            const float ws = 4.5f / std::sqrt(float(s.K)) / 448.0f;
            const Tensor w = wt == Weight::Fp8 ? be.weight(fp8_codes(t[2], ws), ws) : be.weight(t[2], 1.0f);
            return down(be, {be.linear_fp8_rows(rows_on(be, t, offset), w, bias ? be.weight(t[3], 1.0f) : Tensor())});
          }));
        }
  }

  auto small = [](Inputs& r) { return Tensors{r.randn({4, 32}), r.randn({32}, 0.5f), r.randn({8, 32}), r.randn({9})}; };
  cs.push_back(refuse("linear_fp8_rows", "K mismatch", small, [](Backend& be, const Tensors& t) {
    be.linear_fp8_rows(rows_on(be, t, true), be.weight(t[2].reshape({16, 16}), 1.0f), {});
  }));
  cs.push_back(refuse("linear_fp8_rows", "a bias of the wrong size", small, [](Backend& be, const Tensors& t) {
    be.linear_fp8_rows(rows_on(be, t, true), be.weight(t[2], 1.0f), be.weight(t[3], 1.0f));
  }));
  cs.push_back(refuse("linear_fp8_rows", "an offset of the wrong size", small, [](Backend& be, const Tensors& t) {
    Fp8Rows r = rows_on(be, t, false);
    r.offset = be.upload_f32(t[3]);
    be.linear_fp8_rows(r, be.weight(t[2], 1.0f), {});
  }));
  cs.push_back(refuse("linear_fp8_rows", "rows that are not e4m3 codes", small, [](Backend& be, const Tensors& t) {
    Fp8Rows r = rows_on(be, t, false);
    r.codes = be.upload(t[0]);
    be.linear_fp8_rows(r, be.weight(t[2], 1.0f), {});
  }));
  cs.push_back(refuse("dequantise", "a scale of two values", small, [](Backend& be, const Tensors& t) {
    Fp8Rows r = rows_on(be, t, false);
    r.scale = be.upload_f32(Tensor::from_vector({2}, {kRowsScale, kRowsScale}));
    be.dequantise(r);
  }));
  cs.push_back(refuse("dequantise", "no rows held", small, [](Backend& be, const Tensors&) { be.dequantise(Fp8Rows{}); }));
  return cs;
}

}  // namespace raylight::suite
