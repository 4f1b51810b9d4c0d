// Unified sequence parallelism (USP): the token sequence is split over
// ring x ulysses ranks. Inside a Ulysses group an all-to-all turns [tokens/N, heads] into
// [tokens, heads/N] so each rank attends over its group's tokens for a subset of heads;
// across the Ring, K/V blocks travel rank to rank while the local block is computed, and
// partial outputs are merged by their log-sum-exp. Ulysses-only and Ring-only are the
// degenerate cases (a group of one).
//
// The sequence is padded to a multiple of the split; padded keys are masked (they sit at
// the end of the sequence, so every K/V block is "valid prefix + padding") and padded
// queries are dropped when tokens are gathered, so results equal one rank's.
#pragma once

#include "dist/communicator.h"
#include "parallel/sequence_attention.h"

namespace raylight {

class UspAttention final : public SequenceAttention {
 public:
  // ulysses: ranks sharing a token chunk's heads; ring: ranks holding different chunks.
  // Rank (ring r, ulysses u) holds chunk r * ulysses.size() + u.
  UspAttention(Backend& backend, Communicator& ulysses, Communicator& ring);
  void prepare(const TokenGrid& grid, RopeAxes axes, double rope_theta) override;
  Tensor scatter_tokens(const Tensor& tokens) override;
  Tensor gather_tokens(const Tensor& local) override;
  Tensor self_attention(Tensor q, Tensor k, const Tensor& v) override;
  Tensor cross_attention(const Tensor& q, const Tensor& k, const Tensor& v) override;

 private:
  int64_t chunk_index() const;
  // [local, heads, D] -> [ulysses*local, heads/ulysses, D] and back.
  Tensor heads_to_sequence(const Tensor& x);
  Tensor sequence_to_heads(const Tensor& x, int64_t heads);
  Tensor ring_attention(const Tensor& q, const Tensor& k, const Tensor& v);

  Backend& backend_;
  Communicator& ulysses_;
  Communicator& ring_;
  int64_t tokens_ = 0;  // real tokens in the whole sequence
  int64_t local_ = 0;   // rows per rank, padding included
  TokenGrid grid_;
  double theta_ = 0;
  Tensor rope_;         // host fp32 [local, head_dim/2, 2] for this rank's tokens
};

}  // namespace raylight
