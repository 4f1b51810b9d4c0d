// Values that come from users (conditioning, latents, noise) or leave the engine (sampled
// latents, velocities) must be real numbers: an integer-typed tensor is a mistake, not a
// float tensor, and one NaN or infinity spreads to every element of a result that would
// then be written with exit 0. One check, used by the families, the server and the CLI,
// so every command says the same thing.
#pragma once

#include <string>

#include "core/tensor.h"

namespace raylight {

// `t` as a contiguous fp32 host tensor; an Error naming `what` (e.g. "tensor 'context'")
// when its dtype is not a floating-point one or a value is NaN or infinite.
Tensor finite_f32(const Tensor& t, const std::string& what);

}  // namespace raylight
