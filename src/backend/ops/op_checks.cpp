#include "backend/ops/op_checks.h"

#include <limits>

#include "backend/backend.h"
#include "core/error.h"

namespace raylight::checks {
namespace {

const char* device_name(Device d) { return d == Device::CPU ? "host" : "GPU"; }

void placed(const Backend& be, const Tensor& t, const char* op, const char* what) {
  if (!t.defined()) fail(op, ": ", what, " is missing");
  if (t.device() != be.device())
    fail(op, ": ", what, " ", shape_str(t.shape()), " is in ", device_name(t.device()),
         " memory, expected ", device_name(be.device()), " memory (backend ", be.name(), ")");
  if (!t.is_contiguous()) fail(op, ": ", what, " ", shape_str(t.shape()), " is not contiguous");
}

}  // namespace

void activation(const Backend& be, const Tensor& t, const char* op, const char* what) {
  placed(be, t, op, what);
  if (t.dtype() != be.compute_dtype())
    fail(op, ": ", what, " is ", dtype_name(t.dtype()), ", expected ", dtype_name(be.compute_dtype()),
         " (backend ", be.name(), ")");
}

void activation(const Backend& be, const Tensor& t, int ndim, const char* layout, const char* op,
                const char* what) {
  activation(be, t, op, what);
  if (t.ndim() != ndim) fail(op, ": ", what, " has shape ", shape_str(t.shape()), ", expected ", layout);
}

void vector(const Backend& be, const Tensor& v, int64_t n, const char* op, const char* what, bool required) {
  if (!v.defined()) {
    if (required) fail(op, ": ", what, " is missing");
    return;
  }
  activation(be, v, op, what);
  if (v.numel() != n) fail(op, ": ", what, " has shape ", shape_str(v.shape()), ", expected ", n, " elements");
}

void precise_activation(const Backend& be, const Tensor& t, const char* op, const char* what) {
  placed(be, t, op, what);
  if (t.dtype() != be.compute_dtype() && t.dtype() != DType::F32)
    fail(op, ": ", what, " is ", dtype_name(t.dtype()), ", expected ", dtype_name(be.compute_dtype()),
         " or F32 (backend ", be.name(), ")");
}

void precise_vector(const Backend& be, const Tensor& v, int64_t n, const char* op, const char* what, bool required) {
  if (!v.defined()) {
    if (required) fail(op, ": ", what, " is missing");
    return;
  }
  precise_activation(be, v, op, what);
  if (v.numel() != n) fail(op, ": ", what, " has shape ", shape_str(v.shape()), ", expected ", n, " elements");
}

void weight(const Backend& be, const Tensor& w, const char* op) {
  placed(be, w, op, "weight");
  if (!be.takes_weight_dtype(w.dtype()))
    fail(op, ": weight dtype ", dtype_name(w.dtype()), " is not one backend ", be.name(), " multiplies by");
}

void f32_on_device(const Backend& be, const Tensor& t, const char* op, const char* what) {
  placed(be, t, op, what);
  if (t.dtype() != DType::F32) fail(op, ": ", what, " is ", dtype_name(t.dtype()), ", expected F32");
}

void input_absmax(const Backend& be, const Tensor& t, const char* op) {
  if (!t.defined()) return;
  f32_on_device(be, t, op, "input absmax");
  if (t.numel() != 1) fail(op, ": input absmax has shape ", shape_str(t.shape()), ", expected one element");
}

int64_t mul(int64_t a, int64_t b, const char* op) {
  if (a < 0 || b < 0 || (a > 0 && b > std::numeric_limits<int64_t>::max() / a))
    fail(op, ": size ", a, " x ", b, " overflows");
  return a * b;
}

}  // namespace raylight::checks
