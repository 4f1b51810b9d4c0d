// Operand checks shared by the public ops (backend.cpp, ops/*.cpp). Each op runs its checks
// here once for every backend, so the backends' *_impl functions never repeat them. A
// failed check is a raylight::Error naming the op, the operand and what was expected.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace raylight {
class Backend;
}

namespace raylight::checks {

// t is a defined, contiguous activation of `be`: on its device, in its compute dtype.
void activation(const Backend& be, const Tensor& t, const char* op, const char* what);
// t is an activation of `be` with `ndim` dimensions, laid out as `layout` ("[T, C, H, W]").
void activation(const Backend& be, const Tensor& t, int ndim, const char* layout, const char* op,
                const char* what);
// v is absent (allowed unless `required`) or an activation of n elements (any shape).
void vector(const Backend& be, const Tensor& v, int64_t n, const char* op, const char* what,
            bool required = false);
// The same checks where the op also takes fp32 operands on the device (a residual stream,
// modulation vectors or a time embedding kept at full precision; see Backend::to_f32).
void precise_activation(const Backend& be, const Tensor& t, const char* op, const char* what);
void precise_vector(const Backend& be, const Tensor& v, int64_t n, const char* op, const char* what,
                    bool required = false);
// w is a weight made by be.weight(): defined, contiguous, on be's device, in a dtype be
// takes for products.
void weight(const Backend& be, const Tensor& w, const char* op);
// t is a defined, contiguous fp32 tensor on be's device (log-sum-exp).
void f32_on_device(const Backend& be, const Tensor& t, const char* op, const char* what);
// t is absent or an input's absmax as a norm writes it (dit_ops.h): fp32 with one element,
// on be's device.
void input_absmax(const Backend& be, const Tensor& t, const char* op);
// a * b as int64, or an error naming the op when it overflows.
int64_t mul(int64_t a, int64_t b, const char* op);

}  // namespace raylight::checks
