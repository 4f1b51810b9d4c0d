#include "parallel/usp_attention.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace raylight {

int64_t UspAttention::Split::real(int64_t chunk) const {
  return std::clamp<int64_t>(tokens - chunk * local, 0, local);
}

UspAttention::UspAttention(Backend& backend, Communicator& ulysses, Communicator& ring)
    : backend_(backend), ulysses_(ulysses), ring_(ring) {}

int64_t UspAttention::chunk_index() const {
  return static_cast<int64_t>(ring_.rank()) * ulysses_.size() + ulysses_.rank();
}

const UspAttention::Split& UspAttention::split(int segment) const {
  if (!prepared_) fail("sequence attention used before prepare()");
  if (segment < 0 || segment >= static_cast<int>(splits_.size()))
    fail("sequence segment ", segment, " does not exist (", splits_.size(), " prepared)");
  return splits_[segment];
}

void UspAttention::prepare(const SequenceLayout& layout) {
  // Every step of a sample has the same layout: the table is made once.
  if (prepared_ && layout == layout_) return;
  if (layout.segments.empty()) fail("a sequence needs at least one segment");
  const int64_t half = (layout.axes.frame + layout.axes.height + layout.axes.width) / 2;
  std::vector<Split> splits;
  int64_t local = 0;
  for (const auto& s : layout.segments) {
    if (s.tokens < 0 || (s.rotated && s.grid.tokens() != s.tokens))
      fail("sequence segment of ", s.tokens, " tokens does not match its grid of ", s.grid.tokens());
    splits.push_back({s.tokens, segment_rows(s.tokens)});
    local += splits.back().local;
  }
  // Rotations for this rank's real tokens; padding rows and unrotated segments get the
  // identity rotation.
  Tensor table = Tensor::empty({local, half, 2});
  float* t = table.f32();
  for (int64_t i = 0; i < local * half; ++i) {
    t[2 * i] = 1.0f;
    t[2 * i + 1] = 0.0f;
  }
  const int64_t chunk = chunk_index();
  int64_t row = 0;
  for (size_t i = 0; i < splits.size(); ++i) {
    const SequenceSegment& s = layout.segments[i];
    const int64_t real = splits[i].real(chunk);
    if (s.rotated && real > 0) {
      Tensor part = rope_table_3d(s.grid.frames, s.grid.height, s.grid.width, layout.axes,
                                  layout.rope_theta, chunk * splits[i].local, real, s.offset);
      std::memcpy(t + row * half * 2, part.f32(), part.nbytes());
    }
    row += splits[i].local;
  }
  // Padding before a real key in this rank's K/V block (after the all-to-all): then keys
  // are moved to the front before attention.
  padding_inside_ = false;
  bool seen_padding = false;
  for (int u = 0; u < ulysses_.size(); ++u)
    for (const Split& sp : splits) {
      const int64_t real = sp.real(static_cast<int64_t>(ring_.rank()) * ulysses_.size() + u);
      if (real > 0 && seen_padding) padding_inside_ = true;
      if (real < sp.local) seen_padding = true;
    }
  layout_ = layout;
  splits_ = std::move(splits);
  local_ = local;
  // Kept as host fp32: backends take it from there at full precision (a GPU backend copies
  // it to the device once), rather than rounded to the activation dtype by upload().
  rope_ = table;
  prepared_ = true;
}

int64_t UspAttention::local_rows(int segment) const { return split(segment).local; }

// prepare()'s split of one segment: padded to a multiple of ring x ulysses, one chunk each.
int64_t UspAttention::segment_rows(int64_t tokens) const {
  if (tokens < 0) fail("a sequence segment of ", tokens, " tokens");
  const int64_t parts = static_cast<int64_t>(ulysses_.size()) * ring_.size();
  return (tokens + parts - 1) / parts;
}

Tensor UspAttention::scatter_tokens(const Tensor& tokens, int segment) {
  const Split& sp = split(segment);
  if (tokens.dim(0) != sp.tokens)
    fail("scatter_tokens: ", tokens.dim(0), " tokens, prepared for ", sp.tokens, " in segment ", segment);
  const int64_t begin = chunk_index() * sp.local;
  const int64_t real = sp.real(chunk_index());
  Tensor pad = real < sp.local ? backend_.upload(Tensor::zeros({sp.local - real, tokens.dim(1)})) : Tensor();
  if (real == 0) return pad;
  Tensor mine = tokens.slice_rows(begin, begin + real);
  return real < sp.local ? backend_.concat_rows(mine, pad) : backend_.copy(mine);
}

Tensor UspAttention::gather_tokens(const Tensor& local, int segment) {
  // The gathered rows keep the local rows' dtype: a model's fp32 result (a head kept in fp32)
  // is gathered as fp32.
  auto like = [&](const Tensor& t, const Shape& shape) {
    return t.dtype() == DType::F32 ? backend_.empty_f32(shape) : backend_.empty(shape);
  };
  const Split& sp = split(segment);
  if (local.dim(0) != sp.local) fail("gather_tokens: ", local.dim(0), " rows, expected ", sp.local);
  // Groups of one are skipped rather than copied through: their communicator works on host
  // memory, and these tensors may live on a GPU.
  // Ulysses groups first (chunks of one ring position are adjacent), then the ring.
  Tensor group = local;
  if (ulysses_.size() > 1) {
    group = like(local, {ulysses_.size() * sp.local, local.dim(1)});
    ulysses_.all_gather(local.raw(), group.raw(), local.nbytes());
  }
  Tensor all = group;
  if (ring_.size() > 1) {
    all = like(local, {ring_.size() * group.dim(0), local.dim(1)});
    ring_.all_gather(group.raw(), all.raw(), group.nbytes());
  }
  return all.slice_rows(0, sp.tokens);
}

Tensor UspAttention::heads_to_sequence(const Tensor& x) {
  const int64_t n = ulysses_.size(), L = x.dim(0), H = x.dim(1), D = x.dim(2);
  if (n == 1) return x;
  Tensor packed = backend_.swap_leading(x.reshape({L, n, H / n * D}));  // [n, L, H/n*D]
  Tensor out = backend_.empty({n * L, H / n, D});
  ulysses_.all_to_all(packed.raw(), out.raw(), packed.nbytes() / n);
  return out;
}

Tensor UspAttention::sequence_to_heads(const Tensor& x, int64_t heads) {
  const int64_t n = ulysses_.size();
  if (n == 1) return x;
  const int64_t L = x.dim(0) / n, D = x.dim(2);
  Tensor back = backend_.empty({n, L, heads / n * D});
  ulysses_.all_to_all(x.raw(), back.raw(), x.nbytes() / n);
  return backend_.swap_leading(back).reshape({L, heads, D});  // [L, n, H/n*D]
}

int64_t UspAttention::valid_keys(int owner) const {
  int64_t n = 0;
  for (int u = 0; u < ulysses_.size(); ++u)
    for (const Split& sp : splits_) n += sp.real(static_cast<int64_t>(owner) * ulysses_.size() + u);
  return n;
}

Tensor UspAttention::valid_first(const Tensor& x) const {
  const int64_t rows = x.dim(0), width = x.numel() / std::max<int64_t>(rows, 1);
  const Tensor flat = x.reshape({rows, width});
  std::vector<Tensor> real, padding;
  int64_t row = 0;
  for (int u = 0; u < ulysses_.size(); ++u)
    for (const Split& sp : splits_) {
      const int64_t n = sp.real(static_cast<int64_t>(ring_.rank()) * ulysses_.size() + u);
      if (n > 0) real.push_back(flat.slice_rows(row, row + n));
      if (n < sp.local) padding.push_back(flat.slice_rows(row + n, row + sp.local));
      row += sp.local;
    }
  real.insert(real.end(), padding.begin(), padding.end());
  Tensor out = real[0];
  for (size_t i = 1; i < real.size(); ++i) out = backend_.concat_rows(out, real[i]);
  return out.reshape(x.shape());
}

Tensor UspAttention::ring_attention(const Tensor& q, const Tensor& k_in, const Tensor& v_in, Fp8Rows* codes) {
  const Tensor k = padding_inside_ ? valid_first(k_in) : k_in;
  const Tensor v = padding_inside_ ? valid_first(v_in) : v_in;
  const int64_t block = k.dim(0), H = k.dim(1), D = k.dim(2);
  const int r = ring_.size(), me = ring_.rank();
  if (r == 1) return backend_.attention(q, k, v, valid_keys(0), nullptr, codes);

  // K and V travel together as one buffer; two buffers alternate between compute and receive.
  Tensor kv = backend_.concat_rows(k.reshape({block, H * D}), v.reshape({block, H * D}));
  Tensor spare = backend_.empty(kv.shape());
  Tensor out, lse;
  for (int step = 0; step < r; ++step) {
    const int owner = (me - step + r) % r;
    std::unique_ptr<Pending> pending;
    if (step + 1 < r)
      pending = ring_.start_exchange(kv.raw(), spare.raw(), kv.nbytes(), (me + 1) % r, (me - 1 + r) % r);
    const int64_t valid = valid_keys(owner);
    if (valid > 0) {
      Tensor kb = kv.slice_rows(0, block).reshape({block, H, D});
      Tensor vb = kv.slice_rows(block, 2 * block).reshape({block, H, D});
      Tensor part_lse;
      Tensor part = backend_.attention(q, kb, vb, valid, &part_lse);
      if (!out.defined()) {
        out = part;
        lse = part_lse;
      } else {
        backend_.merge_attention(out, lse, part, part_lse);
      }
    }
    if (pending) {
      pending->wait();
      std::swap(kv, spare);
    }
  }
  return out;
}

const Tensor& UspAttention::rope_table() const {
  if (!prepared_) fail("sequence attention used before prepare()");
  return rope_;
}

Tensor UspAttention::self_attention(Tensor q, Tensor k, const Tensor& v, QkRope rope, Fp8Rows* codes) {
  if (codes) *codes = Fp8Rows{};
  if (!prepared_) fail("sequence attention used before prepare()");
  if (q.dim(0) != local_ || k.dim(0) != local_ || v.dim(0) != local_)
    fail("self_attention: ", q.dim(0), " local rows, prepared for ", local_);
  if (rope == QkRope::Apply) {
    backend_.apply_rope(q, rope_);
    backend_.apply_rope(k, rope_);
  }
  const int64_t heads = q.dim(1);
  if (heads % ulysses_.size() != 0)
    fail("Ulysses degree ", ulysses_.size(), " does not divide ", heads, " attention heads");
  // fp8 codes only where the output goes straight to the model: no Ulysses all-to-all and no
  // Ring merge follow (both would need the values in the compute dtype).
  const bool alone = ulysses_.size() == 1 && ring_.size() == 1;
  Tensor out = ring_attention(heads_to_sequence(q), heads_to_sequence(k), heads_to_sequence(v), alone ? codes : nullptr);
  if (codes && codes->held()) return Tensor();
  return sequence_to_heads(out, heads);
}

Tensor UspAttention::cross_attention(const Tensor& q, const Tensor& k, const Tensor& v) {
  return backend_.attention(q, k, v, -1, nullptr);
}

}  // namespace raylight
