// The shared finiteness check (see finite.h).
#include "core/finite.h"

#include <cmath>

#include "core/error.h"

namespace raylight {

Tensor finite_f32(const Tensor& t, const std::string& what) {
  if (!dtype_is_float(t.dtype()))
    fail(what, " is ", dtype_name(t.dtype()), "; it must hold floating-point values");
  Tensor f = t.to_f32();
  const float* p = f.f32();
  for (int64_t i = 0; i < f.numel(); ++i)
    if (!std::isfinite(p[i])) fail(what, " has a NaN or infinite value at element ", i, " (", p[i], ")");
  return f;
}

}  // namespace raylight
