#include "models/clip/clip_transformer.h"

#include <cmath>
#include <vector>

#include "core/error.h"

namespace raylight {

Tensor clip_layer(Backend& ops, WeightStore& w, const ClipConfig& c, int64_t i, const Tensor& x_in, bool causal) {
  const int64_t L = x_in.dim(0);
  const Shape heads{L, c.heads, c.head_dim()};
  auto get = [&](const std::string& rest) { return w.get(c.layer(i, rest)); };
  w.begin_block(static_cast<int>(i));
  Tensor h = ops.layer_norm(x_in, get("layer_norm1.weight"), get("layer_norm1.bias"), c.eps);
  // One product call for q, k and v (a GPU quantises h once for fp8 weights).
  const std::vector<Tensor> qkv = ops.linears(h, {{get("self_attn.q_proj.weight"), get("self_attn.q_proj.bias")},
                                                  {get("self_attn.k_proj.weight"), get("self_attn.k_proj.bias")},
                                                  {get("self_attn.v_proj.weight"), get("self_attn.v_proj.bias")}});
  Tensor q = qkv[0].reshape(heads), k = qkv[1].reshape(heads), v = qkv[2].reshape(heads);
  Tensor a = (causal ? ops.causal_attention(q, k, v) : ops.attention(q, k, v, -1, nullptr)).reshape({L, c.width});
  Tensor x = ops.add(x_in, ops.linear(a, get("self_attn.out_proj.weight"), get("self_attn.out_proj.bias")));

  h = ops.layer_norm(x, get("layer_norm2.weight"), get("layer_norm2.bias"), c.eps);
  h = ops.linear(h, get("mlp.fc1.weight"), get("mlp.fc1.bias"));
  h = c.quick_gelu ? ops.quick_gelu(h) : ops.gelu_erf(h);
  x = ops.add(x, ops.linear(h, get("mlp.fc2.weight"), get("mlp.fc2.bias")));
  w.end_block(static_cast<int>(i));
  return x;
}

Tensor clip_host_weight(const WeightStore& weights, const std::string& name) {
  WeightStore::Stored s = weights.stored(name);
  const bool fp8 = s.bytes.dtype() == DType::F8E4M3 || s.bytes.dtype() == DType::F8E5M2;
  Tensor t = s.bytes.to_f32().clone();  // to_f32 of fp32 bytes may be a read-only view
  float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) {
    float v = p[i] * s.scale;
    if (fp8 && std::isnan(v)) v = 0.0f;
    if (!std::isfinite(v)) fail("tensor ", name, " holds a non-finite value at element ", i);
    p[i] = v;
  }
  return t;
}

}  // namespace raylight
