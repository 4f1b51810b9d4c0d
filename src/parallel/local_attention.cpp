#include "parallel/sequence_attention.h"

namespace raylight {

void LocalAttention::prepare(const TokenGrid& grid, RopeAxes axes, double rope_theta) {
  rope_ = rope_table_3d(grid.frames, grid.height, grid.width, axes, rope_theta, 0, grid.tokens());
}

Tensor LocalAttention::self_attention(Tensor q, Tensor k, const Tensor& v) {
  backend_.apply_rope(q, rope_);
  backend_.apply_rope(k, rope_);
  return backend_.attention(q, k, v, -1, nullptr);
}

Tensor LocalAttention::cross_attention(const Tensor& q, const Tensor& k, const Tensor& v) {
  return backend_.attention(q, k, v, -1, nullptr);
}

}  // namespace raylight
