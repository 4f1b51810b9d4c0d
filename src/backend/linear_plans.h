// Backends whose products pick a kernel per shape (cuBLASLt on CUDA: a heuristic query, and
// with RAYLIGHT_GEMM_TUNE on a timing of its candidates, 0.3 s and more over a Wan forward)
// can make the plans a job's products will use before its first step, as AttentionPlans does
// for attention. A mix-in found by dynamic_cast, so backend.h is untouched; backends without
// plans (the CPU) do not have it.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "core/tensor.h"

namespace raylight {

// One product as Backend::linear, linear_gelu_tanh, linears and linear_pair run it over a
// compute-dtype x of `rows` rows: y = x w[:, first_column : first_column + columns]^T
// (+ bias) (GELU), or y += that (linear_pair's second half).
struct LinearShape {
  int64_t rows = 0;             // x's rows (M)
  int64_t out = 0, width = 0;   // the weight's [N, K] as stored (reshaped: Wan's patch embedding)
  int64_t first_column = 0;     // columns of w the product reads: linear_pair's halves
  int64_t columns = 0;          // 0: all `width` columns
  // The weight as stored: F8E4M3 runs the fp8 product where the backend keeps fp8 codes and
  // multiplies them natively; any other dtype a bf16 product.
  DType weight_dtype = DType::BF16;
  bool bias = false, gelu = false, accumulate = false;
  int64_t reads() const { return columns ? columns : width - first_column; }
};

class LinearPlans {
 public:
  virtual ~LinearPlans() = default;
  // Plans for these products, made now exactly as their first call would make them (timing
  // included), with scratch operands allocated for the timing and freed before returning.
  // False where some product has no plan (its call will fall back, as it would anyway).
  virtual bool prepare_linears(const std::vector<LinearShape>& shapes) = 0;
  // Plans made so far, by preparation or by first calls (tests, `raylight bench`).
  virtual int64_t linear_plans_made() const = 0;
};

// Refuses a shape no product could have (negative or empty sizes, columns outside the
// weight, sizes whose bytes overflow), naming what is wrong.
inline void check_linear_shape(const LinearShape& s) {
  if (s.rows < 0 || s.out < 1 || s.width < 1)
    fail("linear plan: rows ", s.rows, " and weight [", s.out, ", ", s.width,
         "] must be a non-negative row count and a non-empty weight");
  if (s.first_column < 0 || s.columns < 0 || s.first_column >= s.width || s.reads() > s.width - s.first_column)
    fail("linear plan: columns [", s.first_column, ", ", s.first_column + s.reads(), ") lie outside the weight's ",
         s.width, " columns");
  if (s.accumulate && s.gelu) fail("linear plan: an accumulating product takes no GELU epilogue");
  (void)shape_nbytes({s.rows, s.reads()}, DType::F32);  // each fails on overflow
  (void)shape_nbytes({s.rows, s.out}, DType::F32);
  (void)shape_nbytes({s.out, s.width}, DType::F32);
}

// be's prepare_linears, or false when it has no plans to make. Shapes are checked on every
// backend, so a bad list fails the same way everywhere.
inline bool prepare_linears(Backend& be, const std::vector<LinearShape>& shapes) {
  for (const LinearShape& s : shapes) check_linear_shape(s);
  auto* p = dynamic_cast<LinearPlans*>(&be);
  return p && p->prepare_linears(shapes);
}

// Plans be has made so far; 0 for a backend without plans.
inline int64_t linear_plans_made(Backend& be) {
  auto* p = dynamic_cast<LinearPlans*>(&be);
  return p ? p->linear_plans_made() : 0;
}

}  // namespace raylight
