#include "models/common/sinusoidal.h"

#include <cmath>

namespace raylight {

Tensor sinusoidal_embedding(int64_t dim, double position, double max_period) {
  const int64_t half = dim / 2;
  Tensor out = Tensor::zeros({1, dim});
  float* p = out.f32();
  for (int64_t i = 0; i < half; ++i) {
    double angle = position * std::pow(max_period, -static_cast<double>(i) / half);
    p[i] = static_cast<float>(std::cos(angle));
    p[half + i] = static_cast<float>(std::sin(angle));
  }
  return out;
}

}  // namespace raylight
