#include "backend/fp8_attention.h"

#include <algorithm>

#include "backend/ops/op_checks.h"
#include "core/error.h"

namespace raylight {

Tensor attention_fp8(Backend& be, const Tensor& q, const Tensor& k, const Tensor& v, int64_t k_valid, Tensor* lse,
                     int64_t kv_chunk) {
  auto* ops = dynamic_cast<Fp8AttentionOps*>(&be);
  if (!ops) fail("attention_fp8: the ", be.name(), " backend has no fp8 attention");
  checks::activation(be, q, "attention_fp8", "q");
  checks::activation(be, k, "attention_fp8", "k");
  checks::activation(be, v, "attention_fp8", "v");
  if (q.ndim() != 3 || k.ndim() != 3 || k.shape() != v.shape() || q.dim(2) != k.dim(2) || q.dim(1) != k.dim(1) ||
      q.dim(2) < 1 || q.dim(1) < 1)
    fail("attention_fp8: q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()),
         " do not fit [L, heads, head_dim] with as many query heads as key/value heads");
  const int64_t Lk = k.dim(0);
  kv_chunk = resolve_fp8_kv_chunk(kv_chunk);
  if (kv_chunk < kFp8KvChunkOff)
    fail("attention_fp8: key chunk setting ", kv_chunk, " is neither a key count, the rule (0) nor off (-1)");
  if (q.dim(0) == 0) {
    if (lse) *lse = be.empty_f32({q.dim(1), 0});
    return be.empty(q.shape());
  }
  const int64_t valid = k_valid < 0 ? Lk : std::min(k_valid, Lk);
  if (valid <= 0) fail("attention_fp8: every key is masked");
  return ops->attention_fp8_impl(q, k, v, valid, lse, kv_chunk);
}

}  // namespace raylight
