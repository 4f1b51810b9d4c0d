// A product with its LoRA side term: y = x W^T + b + (x down^T) up^T, where the store has
// low-rank factors for W (fp8 weights with side-product LoRAs; none otherwise, and then this
// is exactly Backend::linear). The side term takes x as given, so an fp32 ("precise") x
// keeps the whole term in fp32; the two small products reuse Backend::linear and add, so
// every backend that has them runs it. x_absmax (Backend::linear's: max |x| from the norm
// that wrote x, or undefined) goes to the main product only; the side term's bf16 factors
// read x as it is.
#pragma once

#include <string>
#include <vector>

#include "backend/backend.h"
#include "parallel/weight_store.h"

namespace raylight {

// y plus the side term of `lr` for input x (y returned unchanged when lr has none).
Tensor add_low_rank(Backend& ops, const WeightStore::LowRank& lr, const Tensor& x, const Tensor& y);
// Backend::linear with the store's side term for `weight` (the layer's "<name>.weight").
Tensor lora_linear(Backend& ops, WeightStore& weights, const Tensor& x, const std::string& weight, const Tensor& bias,
                   const Tensor& x_absmax = {});
// lora_linear for several weights over one x (Backend::linears: a GPU quantises x once for
// all of them), each with its own side term; biases[i] goes with weights[i] (undefined: none).
// The side terms' down projections share x as well (one linears call).
std::vector<Tensor> lora_linears(Backend& ops, WeightStore& weights, const Tensor& x,
                                 const std::vector<std::string>& weight_names, const std::vector<Tensor>& biases,
                                 const Tensor& x_absmax = {});
// gelu_tanh of the same (fused by the backend when there is no side term).
Tensor lora_linear_gelu(Backend& ops, WeightStore& weights, const Tensor& x, const std::string& weight,
                        const Tensor& bias, const Tensor& x_absmax = {});

// lora_linear over rows held as fp8 codes (Backend::linear_fp8_rows: the product on the codes
// themselves). With a side term for `weight` the rows are dequantised once and both the
// product and the side term read them, exactly as lora_linear of the dequantised rows.
Tensor lora_linear_fp8_rows(Backend& ops, WeightStore& weights, const Fp8Rows& x, const std::string& weight,
                            const Tensor& bias);

}  // namespace raylight
