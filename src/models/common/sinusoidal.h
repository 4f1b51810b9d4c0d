// The sinusoidal embedding of a scalar (a timestep, a guidance scale) that DiTs feed their
// time MLPs: cos half first, then sin half, frequencies max_period^(-i/half). Computed in
// double on the host, stored as fp32 [1, dim].
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace raylight {

Tensor sinusoidal_embedding(int64_t dim, double position, double max_period = 10000.0);

}  // namespace raylight
