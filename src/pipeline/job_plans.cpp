#include "pipeline/job_plans.h"

#include "backend/attention_plans.h"
#include "backend/linear_plans.h"

namespace raylight {
namespace {

// The listed products of one expert, with each weight's stored dtype from its store. A name
// the store lacks is left out: its product then makes its plan at first use, as before.
void add_products(const std::vector<DenoiserProduct>& listed, const WeightStore& weights,
                  std::vector<LinearShape>* out) {
  for (const DenoiserProduct& p : listed) {
    if (!weights.has(p.weight)) continue;
    LinearShape s = p.shape;
    s.weight_dtype = weights.stored_dtype(p.weight);
    out->push_back(s);
  }
}

}  // namespace

ProductPlans prepare_product_plans(LoadedModel& model, const Shape& item) {
  ProductPlans r;
  if (!model.spec || !model.attention || !model.backend || !model.weights) return r;
  SequenceAttention& attention = *model.attention;
  const std::vector<DenoiserProduct> listed =
      model.spec->products(item, [&](int64_t tokens) { return attention.segment_rows(tokens); });
  std::vector<LinearShape> shapes;
  add_products(listed, *model.weights, &shapes);
  if (model.low_noise && model.low_noise->weights) add_products(listed, *model.low_noise->weights, &shapes);
  r.products = static_cast<int64_t>(listed.size());
  if (shapes.empty()) return r;
  const int64_t before = linear_plans_made(*model.backend);
  r.prepared = prepare_linears(*model.backend, shapes);
  r.plans_made = linear_plans_made(*model.backend) - before;
  return r;
}

bool prepare_attention_plans(LoadedModel& model, const Shape& item) {
  if (!model.spec || !model.backend || model.groups.layout.sequence() != 1) return false;
  const DenoiserSpec& spec = *model.spec;
  const int64_t tokens = spec.sequence_tokens(item), heads = spec.attention_heads();
  bool ok = prepare_attention(*model.backend, tokens, tokens, heads, spec.head_dim(), false);
  if (spec.context_tokens() > 0)
    ok = prepare_attention(*model.backend, tokens, spec.context_tokens(), heads, spec.head_dim(), false) && ok;
  return ok;
}

}  // namespace raylight
