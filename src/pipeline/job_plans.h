// The plans a job will use, made before its first step (without them the first step makes
// them: 0.3-2.4 s on a GPU). Products: the family lists those of a forward for the rows this
// process holds (DenoiserSpec::products, sized by the attention seam's split), the weight
// store says how each weight is stored, and the backend makes the plans
// (backend/linear_plans.h: cuBLASLt's heuristic and candidate timing on CUDA, nothing on the
// CPU). Attention: the backend's plans for the sequence's self- and cross-attention shapes
// (backend/attention_plans.h: cuDNN's graphs).
#pragma once

#include <cstdint>

#include "pipeline/model_loader.h"

namespace raylight {

struct ProductPlans {
  int64_t products = 0;    // products listed (every block's)
  int64_t plans_made = 0;  // plans the backend made for them now (0: none needed, or no plans)
  bool prepared = false;   // the backend has plans and every product has one
};

// For a latent item of shape `item`, on every rank of the job (each makes its own); both
// experts of a pair (their weights may be stored differently).
ProductPlans prepare_product_plans(LoadedModel& model, const Shape& item);

// The attention plans for a latent item of shape `item`: only where one rank runs the whole
// sequence (split layouts attend over shapes of their own and make theirs at first use).
// False where the backend has none or some shape has no plan.
bool prepare_attention_plans(LoadedModel& model, const Shape& item);

}  // namespace raylight
