#include "parallel/sequence_attention.h"

namespace raylight {

SequenceLayout SequenceLayout::single(const TokenGrid& grid, RopeAxes axes, double rope_theta) {
  SequenceLayout l;
  l.segments.push_back({grid.tokens(), true, grid, {0, 0, 0}});
  l.axes = axes;
  l.rope_theta = rope_theta;
  return l;
}

int64_t SequenceLayout::tokens() const {
  int64_t n = 0;
  for (const auto& s : segments) n += s.tokens;
  return n;
}

}  // namespace raylight
