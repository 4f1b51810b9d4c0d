// The attention seam. Model code hands its tokens to this layer and calls attention
// through it; the layer decides which tokens live in this process, applies rotary
// embeddings for exactly those tokens, and runs attention locally or across processes
// (Ulysses, Ring, USP). Padding added to split a sequence is masked here, never in models.
#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "backend/rope_table.h"

namespace raylight {

struct TokenGrid {
  int64_t frames = 0, height = 0, width = 0;
  int64_t tokens() const { return frames * height * width; }
};

class SequenceAttention {
 public:
  virtual ~SequenceAttention() = default;
  // Starts a forward over `grid` tokens whose heads have `head_dim` channels.
  virtual void prepare(const TokenGrid& grid, RopeAxes axes, double rope_theta) = 0;
  // Full sequence [tokens, features] in, the rows this process computes out.
  virtual Tensor scatter_tokens(const Tensor& tokens) = 0;
  // The inverse: this process's rows in, the full sequence out.
  virtual Tensor gather_tokens(const Tensor& local) = 0;
  // Self-attention over the whole sequence with 3-D RoPE on q and k; q, k, v [local, H, D].
  virtual Tensor self_attention(Tensor q, Tensor k, const Tensor& v) = 0;
  // Attention of local queries to a context every process holds in full.
  virtual Tensor cross_attention(const Tensor& q, const Tensor& k, const Tensor& v) = 0;
};

}  // namespace raylight
