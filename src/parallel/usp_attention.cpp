#include "parallel/usp_attention.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace raylight {

UspAttention::UspAttention(Backend& backend, Communicator& ulysses, Communicator& ring)
    : backend_(backend), ulysses_(ulysses), ring_(ring) {}

int64_t UspAttention::chunk_index() const {
  return static_cast<int64_t>(ring_.rank()) * ulysses_.size() + ulysses_.rank();
}

void UspAttention::prepare(const TokenGrid& grid, RopeAxes axes, double rope_theta) {
  // Every step of a video has the same grid: the table is made once.
  if (rope_.defined() && grid.frames == grid_.frames && grid.height == grid_.height &&
      grid.width == grid_.width && rope_theta == theta_)
    return;
  grid_ = grid;
  theta_ = rope_theta;
  const int64_t parts = static_cast<int64_t>(ulysses_.size()) * ring_.size();
  tokens_ = grid.tokens();
  local_ = (tokens_ + parts - 1) / parts;
  const int64_t begin = chunk_index() * local_;
  const int64_t real = std::clamp<int64_t>(tokens_ - begin, 0, local_);
  // Rotations for this rank's real tokens; padding rows get the identity rotation.
  const int64_t half = (axes.frame + axes.height + axes.width) / 2;
  Tensor table = Tensor::empty({local_, half, 2});
  float* t = table.f32();
  for (int64_t i = 0; i < local_ * half; ++i) {
    t[2 * i] = 1.0f;
    t[2 * i + 1] = 0.0f;
  }
  if (real > 0) {
    Tensor part = rope_table_3d(grid.frames, grid.height, grid.width, axes, rope_theta, begin, real);
    std::memcpy(t, part.f32(), part.nbytes());
  }
  // Kept as host fp32: backends take it from there at full precision (a GPU backend copies
  // it to the device once), rather than rounded to the activation dtype by upload().
  rope_ = table;
}

Tensor UspAttention::scatter_tokens(const Tensor& tokens) {
  if (tokens.dim(0) != tokens_)
    fail("scatter_tokens: ", tokens.dim(0), " tokens, prepared for ", tokens_);
  const int64_t begin = chunk_index() * local_;
  const int64_t real = std::clamp<int64_t>(tokens_ - begin, 0, local_);
  Tensor pad = real < local_ ? backend_.upload(Tensor::zeros({local_ - real, tokens.dim(1)})) : Tensor();
  if (real == 0) return pad;
  Tensor mine = tokens.slice_rows(begin, begin + real);
  return real < local_ ? backend_.concat_rows(mine, pad) : backend_.copy(mine);
}

Tensor UspAttention::gather_tokens(const Tensor& local) {
  if (local.dim(0) != local_) fail("gather_tokens: ", local.dim(0), " rows, expected ", local_);
  // Groups of one are skipped rather than copied through: their communicator works on host
  // memory, and these tensors may live on a GPU.
  // Ulysses groups first (chunks of one ring position are adjacent), then the ring.
  Tensor group = local;
  if (ulysses_.size() > 1) {
    group = backend_.empty({ulysses_.size() * local_, local.dim(1)});
    ulysses_.all_gather(local.raw(), group.raw(), local.nbytes());
  }
  Tensor all = group;
  if (ring_.size() > 1) {
    all = backend_.empty({ring_.size() * group.dim(0), local.dim(1)});
    ring_.all_gather(group.raw(), all.raw(), group.nbytes());
  }
  return all.slice_rows(0, tokens_);
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

Tensor UspAttention::ring_attention(const Tensor& q, const Tensor& k, const Tensor& v) {
  const int64_t block = k.dim(0), H = k.dim(1), D = k.dim(2);
  const int r = ring_.size(), me = ring_.rank();
  auto valid_keys = [&](int owner) {
    return std::clamp<int64_t>(tokens_ - static_cast<int64_t>(owner) * block, 0, block);
  };
  if (r == 1) return backend_.attention(q, k, v, valid_keys(0), nullptr);

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

Tensor UspAttention::self_attention(Tensor q, Tensor k, const Tensor& v) {
  backend_.apply_rope(q, rope_);
  backend_.apply_rope(k, rope_);
  const int64_t heads = q.dim(1);
  if (heads % ulysses_.size() != 0)
    fail("Ulysses degree ", ulysses_.size(), " does not divide ", heads, " attention heads");
  Tensor out = ring_attention(heads_to_sequence(q), heads_to_sequence(k), heads_to_sequence(v));
  return sequence_to_heads(out, heads);
}

Tensor UspAttention::cross_attention(const Tensor& q, const Tensor& k, const Tensor& v) {
  return backend_.attention(q, k, v, -1, nullptr);
}

}  // namespace raylight
