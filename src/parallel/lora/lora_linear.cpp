#include "parallel/lora/lora_linear.h"

namespace raylight {

Tensor add_low_rank(Backend& ops, const WeightStore::LowRank& lr, const Tensor& x, const Tensor& y) {
  if (!lr.defined()) return y;
  const Tensor t = ops.linear(ops.linear(x, lr.down, Tensor()), lr.up, Tensor());
  return ops.add(y, t);
}

Tensor lora_linear(Backend& ops, WeightStore& weights, const Tensor& x, const std::string& weight, const Tensor& bias) {
  const Tensor y = ops.linear(x, weights.get(weight), bias);
  return add_low_rank(ops, weights.low_rank(weight), x, y);
}

Tensor lora_linear_gelu(Backend& ops, WeightStore& weights, const Tensor& x, const std::string& weight,
                        const Tensor& bias) {
  const WeightStore::LowRank lr = weights.low_rank(weight);
  if (!lr.defined()) return ops.linear_gelu_tanh(x, weights.get(weight), bias);
  return ops.gelu_tanh(add_low_rank(ops, lr, x, ops.linear(x, weights.get(weight), bias)));
}

}  // namespace raylight
