#include "parallel/lora/merged_lora_weights.h"

#include <cmath>

#include "core/error.h"

namespace raylight {

namespace {

bool is_fp8(DType t) { return t == DType::F8E4M3 || t == DType::F8E5M2; }

}  // namespace

MergedLoraWeights::MergedLoraWeights(std::shared_ptr<WeightStore> base, const LoraPlan& plan, bool merge_fp8)
    : base_(std::move(base)) {
  for (const auto& [weight, patches] : plan.patches) {
    bool low_rank_only = true;
    for (const auto& p : patches) low_rank_only = low_rank_only && p.adapter->kind == AdapterKind::LowRank;
    const Shape shape = base_->shape(weight);
    if (is_fp8(base_->stored_dtype(weight)) && !merge_fp8 && low_rank_only && shape.size() == 2) {
      std::vector<SideFactors> parts;
      for (const auto& p : patches)
        parts.push_back(place_rows(side_factors(*p.adapter, p.strength), p.row_offset, shape[0], p.swap_halves));
      side_[weight] = stack_factors(parts);
    } else {
      merged_[weight] = patches;
    }
  }
}

DType MergedLoraWeights::stored_dtype(const std::string& name) const {
  const DType t = base_->stored_dtype(name);
  return merged_.count(name) && is_fp8(t) ? DType::BF16 : t;
}

WeightStore::Stored MergedLoraWeights::stored(const std::string& name) const {
  auto it = merged_.find(name);
  if (it == merged_.end()) return base_->stored(name);
  std::lock_guard<std::mutex> lock(mutex_);
  auto made = made_.find(name);
  if (made != made_.end()) return {made->second, 1.0f};
  const Stored s = base_->stored(name);
  Tensor w = s.bytes.to_f32().clone();
  base_->release_stored(name);
  float* p = w.f32();
  const int64_t n = w.numel();
  if (s.scale != 1.0f)
    for (int64_t i = 0; i < n; ++i) p[i] *= s.scale;
  for (const WeightPatch& patch : it->second) {
    // The rows it patches: all, or ComfyUI's narrowed run of a fused weight.
    Shape rows_shape = w.shape();
    int64_t first = 0;
    if (patch.rows > 0) {
      rows_shape[0] = patch.rows;
      first = patch.row_offset * (n / w.dim(0));
    }
    Tensor d = adapter_delta(*patch.adapter, rows_shape);
    if (patch.swap_halves) d = swap_row_halves(d);
    const float* q = d.f32();
    const int64_t m = d.numel();
    float* r = p + first;
    if (patch.adapter->kind == AdapterKind::SetWeight) {
      std::copy(q, q + m, r);  // ComfyUI's "set": the tensor as given, no strength
      continue;
    }
    for (int64_t i = 0; i < m; ++i) r[i] = static_cast<float>(r[i] + patch.strength * static_cast<double>(q[i]));
  }
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) fail("LoRA: merged weight ", name, " is not finite (strength too large?)");
  const DType out = stored_dtype(name);
  Tensor bytes = out == DType::F32 ? w : w.to_dtype(out);
  made_[name] = bytes;
  return {bytes, 1.0f};
}

float MergedLoraWeights::stored_scale(const std::string& name) const {
  return merged_.count(name) ? 1.0f : base_->stored_scale(name);
}

void MergedLoraWeights::read_stored(const std::string& name, size_t offset, size_t size, void* dst) const {
  if (merged_.count(name)) return WeightStore::read_stored(name, offset, size, dst);
  base_->read_stored(name, offset, size, dst);
}

Tensor MergedLoraWeights::get(const std::string& name) {
  return merged_.count(name) ? WeightStore::get(name) : base_->get(name);
}

void MergedLoraWeights::release_stored(const std::string& name) const {
  if (!merged_.count(name)) return base_->release_stored(name);
  std::lock_guard<std::mutex> lock(mutex_);
  made_.erase(name);
}

}  // namespace raylight
