#include "parallel/lora/lora_linear.h"

#include "core/error.h"

namespace raylight {

namespace {

// y + up(down_x): the side term's second product, given its first.
Tensor add_up_projection(Backend& ops, const WeightStore::LowRank& lr, const Tensor& down_x, const Tensor& y) {
  return ops.add(y, ops.linear(down_x, lr.up, Tensor()));
}

}  // namespace

Tensor add_low_rank(Backend& ops, const WeightStore::LowRank& lr, const Tensor& x, const Tensor& y) {
  if (!lr.defined()) return y;
  return add_up_projection(ops, lr, ops.linear(x, lr.down, Tensor()), y);
}

Tensor lora_linear(Backend& ops, WeightStore& weights, const Tensor& x, const std::string& weight, const Tensor& bias,
                   const Tensor& x_absmax) {
  const Tensor y = ops.linear(x, weights.get(weight), bias, x_absmax);
  return add_low_rank(ops, weights.low_rank(weight), x, y);
}

std::vector<Tensor> lora_linears(Backend& ops, WeightStore& weights, const Tensor& x,
                                 const std::vector<std::string>& weight_names, const std::vector<Tensor>& biases,
                                 const Tensor& x_absmax) {
  if (biases.size() != weight_names.size())
    fail("lora_linears: ", weight_names.size(), " weights but ", biases.size(), " biases");
  std::vector<LinearTerm> terms;
  std::vector<WeightStore::LowRank> lrs;
  std::vector<LinearTerm> downs;
  for (size_t i = 0; i < weight_names.size(); ++i) {
    terms.push_back({weights.get(weight_names[i]), biases[i]});
    lrs.push_back(weights.low_rank(weight_names[i]));
    if (lrs.back().defined()) downs.push_back({lrs.back().down, Tensor()});
  }
  std::vector<Tensor> y = ops.linears(x, terms, x_absmax);
  if (downs.empty()) return y;
  const std::vector<Tensor> t = ops.linears(x, downs);
  for (size_t i = 0, j = 0; i < y.size(); ++i)
    if (lrs[i].defined()) y[i] = add_up_projection(ops, lrs[i], t[j++], y[i]);
  return y;
}

Tensor lora_linear_gelu(Backend& ops, WeightStore& weights, const Tensor& x, const std::string& weight,
                        const Tensor& bias, const Tensor& x_absmax) {
  const WeightStore::LowRank lr = weights.low_rank(weight);
  if (!lr.defined()) return ops.linear_gelu_tanh(x, weights.get(weight), bias, x_absmax);
  return ops.gelu_tanh(add_low_rank(ops, lr, x, ops.linear(x, weights.get(weight), bias, x_absmax)));
}

Tensor lora_linear_fp8_rows(Backend& ops, WeightStore& weights, const Fp8Rows& x, const std::string& weight,
                            const Tensor& bias) {
  const WeightStore::LowRank lr = weights.low_rank(weight);
  if (!lr.defined()) return ops.linear_fp8_rows(x, weights.get(weight), bias);
  const Tensor values = ops.dequantise(x);
  return add_low_rank(ops, lr, values, ops.linear(values, weights.get(weight), bias));
}

}  // namespace raylight
