// Shared by the CPU and GPU test binaries: the Wan fixture cases (inputs written by
// tests/fixtures/make_wan_golden.py) and the largest elementwise difference of two results.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "io/safetensors.h"
#include "models/wan/wan_model.h"

namespace raylight::test {

inline std::string fixture(const std::string& name) { return std::string(RAYLIGHT_FIXTURE_DIR) + "/" + name; }

// The inputs of a fixture case file (latent, timestep, context, and y / clip_fea for I2V).
inline WanInputs wan_case_inputs(const SafetensorsFile& c) {
  WanInputs in;
  in.latent = c.tensor("latent").to_f32();
  in.timestep = c.tensor("timestep").to_f32().f32()[0];
  in.context = c.tensor("context").to_f32();
  if (c.has("y")) in.y = c.tensor("y").to_f32();
  if (c.has("clip_fea")) in.clip_fea = c.tensor("clip_fea").to_f32();
  return in;
}

// max |a - b| over fp32 tensors; infinity when the shapes differ.
inline float max_abs_diff(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return std::numeric_limits<float>::infinity();
  float m = 0;
  const float *pa = a.f32(), *pb = b.f32();
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(pa[i] - pb[i]));
  return m;
}

}  // namespace raylight::test
