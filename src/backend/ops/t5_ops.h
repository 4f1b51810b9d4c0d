// The T5 text encoder's attention: scores biased by a learned value per key-query offset
// (relative position buckets). A mixin of Backend (backend.h); t5_ops.cpp checks the
// operands once and calls the backend's *_impl.
#pragma once

#include "core/tensor.h"

namespace raylight {

class Backend;

class T5Ops {
 public:
  // softmax(q k^T * scale + bias) v with an additive bias that depends only on the offset
  // between key and query: q [Lq, H, D], k/v [Lk, H, D]; bias_by_offset is a host fp32
  // tensor [H, Lq + Lk - 1] and query i / key j read entry j - i + Lq - 1.
  Tensor attention_offset_bias(const Tensor& q, const Tensor& k, const Tensor& v,
                               const Tensor& bias_by_offset, float scale);

 protected:
  ~T5Ops() = default;
  virtual Tensor attention_offset_bias_impl(const Tensor& q, const Tensor& k, const Tensor& v,
                                            const Tensor& bias_by_offset, float scale) = 0;

 private:
  friend class Backend;  // the only class that derives from this one
  T5Ops() = default;
  Backend& backend();
};

}  // namespace raylight
