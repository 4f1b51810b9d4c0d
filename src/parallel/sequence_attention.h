// The attention seam. Model code hands its tokens to this layer and calls attention
// through it; the layer decides which tokens live in this process, applies rotary
// embeddings for exactly those tokens, and runs attention locally or across processes
// (Ulysses, Ring, USP). Padding added to split a sequence is masked here, never in models.
//
// A sequence is one or more segments attended jointly: Wan has one (the video tokens);
// Flux, Qwen-Image and HunyuanVideo attend over text + image tokens, Kontext adds reference
// images. Each segment is split over the ranks on its own (every rank holds its share of the
// text and its share of the image), so a model that runs different weights on different
// segments (double-stream blocks) finds its local rows of each segment together. The local
// rows of a rank are its chunks of the segments in segment order; self-attention takes q,
// k, v in that order. Segments carry their own RoPE positions: a 3-D grid with offsets, or
// none (identity rotation: Flux's text ids are 0, HunyuanVideo does not rotate text).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "backend/rope_table.h"

namespace raylight {

struct TokenGrid {
  int64_t frames = 0, height = 0, width = 0;
  int64_t tokens() const { return frames * height * width; }
  bool operator==(const TokenGrid&) const = default;
};

// A run of tokens in the joint sequence.
struct SequenceSegment {
  int64_t tokens = 0;
  bool rotated = false;                  // RoPE from `grid` (else the identity rotation)
  TokenGrid grid;                        // rotated: grid.tokens() == tokens, row-major order
  std::array<int64_t, 3> offset{0, 0, 0};  // positions start here on each axis
  bool operator==(const SequenceSegment&) const = default;
};

struct SequenceLayout {
  std::vector<SequenceSegment> segments;
  RopeAxes axes{0, 0, 0};
  double rope_theta = 10000.0;
  // One rotated segment: a video's tokens.
  static SequenceLayout single(const TokenGrid& grid, RopeAxes axes, double rope_theta);
  int64_t tokens() const;
  bool operator==(const SequenceLayout& o) const {
    return segments == o.segments && axes.frame == o.axes.frame && axes.height == o.axes.height &&
           axes.width == o.axes.width && rope_theta == o.rope_theta;
  }
};

// Whether self_attention turns q and k by RoPE (Apply), or takes them turned already
// (Applied: a model that fused the rotation with its q/k norm, by rope_table()).
enum class QkRope { Apply, Applied };

class SequenceAttention {
 public:
  virtual ~SequenceAttention() = default;
  // Starts a forward over `layout` (a repeated layout costs nothing).
  virtual void prepare(const SequenceLayout& layout) = 0;
  // A whole segment [tokens, features] in, the rows of it this process computes out (fresh
  // storage: a model may update them in place, its residual stream).
  virtual Tensor scatter_tokens(const Tensor& tokens, int segment = 0) = 0;
  // The inverse: this process's rows of a segment in, the whole segment out.
  virtual Tensor gather_tokens(const Tensor& local, int segment = 0) = 0;
  // Rows of `segment` this process holds (padding included).
  virtual int64_t local_rows(int segment = 0) const = 0;
  // Self-attention over the whole joint sequence with RoPE on q and k; q, k, v hold this
  // process's rows of every segment, in segment order: [local rows, heads, head_dim].
  // codes (or null): where the output may come back as fp8 codes [local rows, heads *
  // head_dim] (backend/fp8_rows.h) for a model whose next step is a product over it
  // (Backend::linear_fp8_rows). The seam passes the request on only when nothing is sent
  // after the attention (one process), and the backend fills it only where it ran fp8
  // attention whose output is e4m3; then the returned tensor is undefined. Otherwise *codes
  // is left empty and the output is returned as always.
  virtual Tensor self_attention(Tensor q, Tensor k, const Tensor& v, QkRope rope = QkRope::Apply,
                                Fp8Rows* codes = nullptr) = 0;
  // The RoPE of this process's rows, in self_attention's row order: (cos, sin)
  // [local rows, head_dim/2, 2], host fp32 (padding rows and unrotated segments turn by 0).
  // It is what a model hands Backend::qkv_norm_rope / norm_rope to turn q and k itself
  // (QkRope::Applied); the positions of these rows are the seam's, never the model's.
  virtual const Tensor& rope_table() const = 0;
  // Attention of local queries to a context every process holds in full.
  virtual Tensor cross_attention(const Tensor& q, const Tensor& k, const Tensor& v) = 0;
  // Rows this process would hold of a segment of `tokens` tokens (padding included), known
  // before prepare(): what plans made before a forward are sized by.
  virtual int64_t segment_rows(int64_t tokens) const = 0;
};

}  // namespace raylight
