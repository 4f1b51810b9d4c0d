// Backends whose attention compiles a plan per shape (cuDNN on CUDA: 0.1-1 s each) can build
// the plans a job will use before its first step. A mix-in found by dynamic_cast, so that it
// did not touch backend.h; backends without plans simply do not have it.
#pragma once

#include <cstdint>

#include "backend/backend.h"

namespace raylight {

class AttentionPlans {
 public:
  virtual ~AttentionPlans() = default;
  // Plans for attention with q [Lq, heads, head_dim] and k/v [Lk, heads, head_dim] (lse
  // wanted or not), built now. False where some plan does not exist (the call falls back).
  virtual bool prepare_attention(int64_t Lq, int64_t Lk, int64_t heads, int64_t head_dim, bool lse) = 0;
};

// be's prepare_attention, or false when it has no plans to build.
inline bool prepare_attention(Backend& be, int64_t Lq, int64_t Lk, int64_t heads, int64_t head_dim, bool lse) {
  auto* p = dynamic_cast<AttentionPlans*>(&be);
  return p && p->prepare_attention(Lq, Lk, heads, head_dim, lse);
}

}  // namespace raylight
