// The pieces the Wan VAEs' tensor lists are built of (official Wan2.1_VAE / Wan2.2_VAE
// module names): a conv's weight and bias, a residual block, the middle (residual,
// attention, residual). Used by wan_vae_config and wan22_vae_config.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace raylight::wan_vae_tensors {

using TensorList = std::vector<std::pair<std::string, Shape>>;

inline void add_conv(TensorList& t, const std::string& name, Shape w) {
  const int64_t out = w[0];
  t.emplace_back(name + ".weight", std::move(w));
  t.emplace_back(name + ".bias", Shape{out});
}

inline void add_residual(TensorList& t, const std::string& p, int64_t in, int64_t out) {
  t.emplace_back(p + "residual.0.gamma", Shape{in, 1, 1, 1});
  add_conv(t, p + "residual.2", {out, in, 3, 3, 3});
  t.emplace_back(p + "residual.3.gamma", Shape{out, 1, 1, 1});
  add_conv(t, p + "residual.6", {out, out, 3, 3, 3});
  if (in != out) add_conv(t, p + "shortcut", {out, in, 1, 1, 1});
}

inline void add_middle(TensorList& t, const std::string& p, int64_t dim) {
  add_residual(t, p + "middle.0.", dim, dim);
  t.emplace_back(p + "middle.1.norm.gamma", Shape{dim, 1, 1});
  add_conv(t, p + "middle.1.to_qkv", {3 * dim, dim, 1, 1});
  add_conv(t, p + "middle.1.proj", {dim, dim, 1, 1});
  add_residual(t, p + "middle.2.", dim, dim);
}

}  // namespace raylight::wan_vae_tensors
