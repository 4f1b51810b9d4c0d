// Unified sequence parallelism (USP): the token sequence is split over
// ring x ulysses ranks. Inside a Ulysses group an all-to-all turns [tokens/N, heads] into
// [tokens, heads/N] so each rank attends over its group's tokens for a subset of heads;
// across the Ring, K/V blocks travel rank to rank while the local block is computed, and
// partial outputs are merged by their log-sum-exp. Ulysses-only and Ring-only are the
// degenerate cases (a group of one).
//
// Each segment of a joint sequence is split on its own: padded to a multiple of the split,
// rank (ring r, ulysses u) holding chunk r * ulysses + u of every segment. Padded queries
// are dropped when tokens are gathered. Padded keys are masked: the attention op takes a
// count of valid keys at the front of each K/V block, so after the Ulysses all-to-all a
// rank moves its valid keys to the front of its block when padding sits between them (only
// joint sequences with uneven segments; a single segment's padding is already at the end).
// Results equal one rank's.
#pragma once

#include <vector>

#include "dist/communicator.h"
#include "parallel/sequence_attention.h"

namespace raylight {

class UspAttention final : public SequenceAttention {
 public:
  // ulysses: ranks sharing a token chunk's heads; ring: ranks holding different chunks.
  // Rank (ring r, ulysses u) holds chunk r * ulysses.size() + u.
  UspAttention(Backend& backend, Communicator& ulysses, Communicator& ring);
  void prepare(const SequenceLayout& layout) override;
  Tensor scatter_tokens(const Tensor& tokens, int segment = 0) override;
  Tensor gather_tokens(const Tensor& local, int segment = 0) override;
  int64_t local_rows(int segment = 0) const override;
  Tensor self_attention(Tensor q, Tensor k, const Tensor& v, QkRope rope = QkRope::Apply,
                        Fp8Rows* codes = nullptr) override;
  const Tensor& rope_table() const override;
  Tensor cross_attention(const Tensor& q, const Tensor& k, const Tensor& v) override;
  int64_t segment_rows(int64_t tokens) const override;

 private:
  struct Split {
    int64_t tokens = 0;  // real tokens of the segment
    int64_t local = 0;   // rows per chunk, padding included
    int64_t real(int64_t chunk) const;  // real rows in chunk `chunk`
  };
  const Split& split(int segment) const;
  int64_t chunk_index() const;
  // [local, heads, D] -> [ulysses*local, heads/ulysses, D] and back.
  Tensor heads_to_sequence(const Tensor& x);
  Tensor sequence_to_heads(const Tensor& x, int64_t heads);
  // Real keys of ring position `owner`'s block (after the all-to-all).
  int64_t valid_keys(int owner) const;
  // K or V of this ring position's block with its real rows moved to the front.
  Tensor valid_first(const Tensor& x) const;
  // codes: passed to the attention op when the ring has one position (no merge follows).
  Tensor ring_attention(const Tensor& q, const Tensor& k, const Tensor& v, Fp8Rows* codes = nullptr);

  Backend& backend_;
  Communicator& ulysses_;
  Communicator& ring_;
  SequenceLayout layout_;
  bool prepared_ = false;
  std::vector<Split> splits_;
  int64_t local_ = 0;  // local rows over all segments
  bool padding_inside_ = false;  // a block has padding before real keys
  Tensor rope_;        // host fp32 [local_, head_dim/2, 2] for this rank's rows
};

}  // namespace raylight
