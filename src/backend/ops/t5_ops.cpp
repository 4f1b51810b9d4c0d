// The checked public op of t5_ops.h.
#include "backend/ops/t5_ops.h"

#include "backend/backend.h"
#include "backend/ops/op_checks.h"
#include "core/error.h"

namespace raylight {

Backend& T5Ops::backend() { return static_cast<Backend&>(*this); }

Tensor T5Ops::attention_offset_bias(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias_by_offset,
                                    float scale) {
  Backend& be = backend();
  const char* op = "biased attention";
  checks::activation(be, q, op, "q");
  checks::activation(be, k, op, "k");
  checks::activation(be, v, op, "v");
  if (q.ndim() != 3 || k.ndim() != 3 || k.shape() != v.shape() || q.dim(1) != k.dim(1) || q.dim(2) != k.dim(2) ||
      q.dim(2) < 1)
    fail(op, ": q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()),
         " do not fit [L, heads, head_dim]");
  if (!bias_by_offset.defined() || bias_by_offset.device() != Device::CPU || bias_by_offset.dtype() != DType::F32 ||
      !bias_by_offset.is_contiguous())
    fail(op, ": the bias is not a contiguous host fp32 tensor");
  const int64_t Lq = q.dim(0), Lk = k.dim(0);
  if (Lq == 0) return be.empty(q.shape());
  if (Lk == 0) fail(op, ": no keys");
  if (bias_by_offset.shape() != Shape{q.dim(1), Lq + Lk - 1})
    fail(op, ": bias ", shape_str(bias_by_offset.shape()), ", expected [", q.dim(1), ", ", Lq + Lk - 1, "]");
  return attention_offset_bias_impl(q, k, v, bias_by_offset, scale);
}

}  // namespace raylight
