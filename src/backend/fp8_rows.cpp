// The public ops over rows held as fp8 codes (Backend::dequantise, Backend::linear_fp8_rows:
// operands checked once for every backend, as backend.cpp does for the other ops), the
// reference product (dequantise, then linear), and the host -> device helper.
#include "backend/fp8_rows.h"

#include <algorithm>
#include <cmath>

#include "backend/backend.h"
#include "backend/ops/op_checks.h"
#include "core/error.h"

namespace raylight {
namespace {

void check_rows(const Backend& be, const Fp8Rows& x, const char* op) {
  const Tensor& c = x.codes;
  if (!x.held() || c.ndim() != 2 || c.dtype() != DType::F8E4M3 || c.device() != be.device() || !c.is_contiguous())
    fail(op, ": the rows' codes must be contiguous fp8 e4m3 [rows, cols] on backend ", be.name(), ", got ",
         x.held() ? shape_str(c.shape()) + " " + dtype_name(c.dtype()) : std::string("none"));
  const Tensor& s = x.scale;
  if (!s.defined() || s.numel() != 1 || s.dtype() != DType::F32 || s.device() != be.device() || !s.is_contiguous())
    fail(op, ": the rows' scale must be one fp32 value on backend ", be.name());
  const Tensor& o = x.offset;
  if (o.defined() && (o.ndim() != 1 || o.dim(0) != c.dim(1) || o.dtype() != DType::F32 ||
                      o.device() != be.device() || !o.is_contiguous()))
    fail(op, ": the rows' offset must be fp32 [", c.dim(1), "] on backend ", be.name(), ", got ",
         shape_str(o.shape()), " ", dtype_name(o.dtype()));
}

}  // namespace

Tensor Backend::dequantise(const Fp8Rows& x) {
  check_rows(*this, x, "dequantise");
  if (x.codes.numel() == 0) return empty(x.codes.shape());
  return dequantise_impl(x);
}

Tensor Backend::linear_fp8_rows(const Fp8Rows& x, const Tensor& w, const Tensor& b) {
  const char* op = "linear_fp8_rows";
  check_rows(*this, x, op);
  checks::weight(*this, w, op);
  if (w.ndim() != 2 || w.dim(1) != x.cols())
    fail(op, ": rows ", shape_str(x.codes.shape()), " do not match weight ", shape_str(w.shape()));
  if (x.cols() == 0) fail(op, ": rows ", shape_str(x.codes.shape()), " have no features");
  if (b.defined() && b.ndim() != 1)
    fail(op, ": bias ", shape_str(b.shape()), " does not match weight ", shape_str(w.shape()));
  checks::vector(*this, b, w.dim(0), op, "bias");
  if (x.rows() == 0 || w.dim(0) == 0) return empty({x.rows(), w.dim(0)});
  return linear_fp8_rows_impl(x, w, b);
}

Tensor Backend::linear_fp8_rows_impl(const Fp8Rows& x, const Tensor& w, const Tensor& b) {
  return linear_impl(dequantise_impl(x), w, b, {});
}

Fp8Rows upload_fp8_rows(Backend& be, const Tensor& codes, float scale, const Tensor& offset) {
  if (!codes.defined() || codes.ndim() != 2 || codes.dtype() != DType::F8E4M3 || codes.device() != Device::CPU ||
      !codes.is_contiguous())
    fail("upload_fp8_rows: codes must be contiguous host fp8 e4m3 [rows, cols], got ", shape_str(codes.shape()));
  if (!(scale > 0.0f) || !std::isfinite(scale))
    fail("upload_fp8_rows: the scale must be a finite positive number, got ", scale);
  if (offset.defined()) {
    if (offset.ndim() != 1 || offset.dim(0) != codes.dim(1) || offset.dtype() != DType::F32 ||
        offset.device() != Device::CPU || !offset.is_contiguous())
      fail("upload_fp8_rows: the offset must be host fp32 [", codes.dim(1), "], got ", shape_str(offset.shape()));
    for (int64_t i = 0; i < offset.numel(); ++i)
      if (!std::isfinite(offset.f32()[i])) fail("upload_fp8_rows: offset ", i, " is not finite");
  }
  const uint8_t* c = codes.data<uint8_t>();
  for (int64_t i = 0; i < codes.numel(); ++i)
    if ((c[i] & 0x7f) == 0x7f) fail("upload_fp8_rows: code ", i, " is an e4m3 NaN");
  Fp8Rows r;
  Tensor bytes = be.device_bytes(std::max<size_t>(codes.nbytes(), 1));
  be.write_bytes(codes.raw(), bytes, 0, codes.nbytes());
  r.codes = bytes.bytes_view(0, codes.shape(), DType::F8E4M3);
  r.scale = be.upload_f32(Tensor::from_vector({1}, {scale}));
  if (offset.defined()) r.offset = be.upload_f32(offset);
  return r;
}

}  // namespace raylight
