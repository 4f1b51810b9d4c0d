// Comparisons of host fp32 tensors for tests: relative L2 distance of a from the reference b.
#pragma once

#include <cmath>

#include "core/tensor.h"

namespace raylight::test {

inline double rel_l2(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double d = double(a.f32()[i]) - b.f32()[i];
    num += d * d;
    den += double(b.f32()[i]) * b.f32()[i];
  }
  return std::sqrt(num / den);
}

}  // namespace raylight::test
