// A joint sequence (text, video, a reference image placed beside it) through the attention
// seam on 1-4 CPU ranks, against attention over the whole sequence computed directly with
// the CPU ops. Segments have uneven lengths, so chunks are padded and, under Ulysses,
// padding lands between real keys. Prints the largest difference; exits 1 when it exceeds
// the tolerance (Ring merges partial softmaxes in another order: fp32 rounding).
//
//   raylight_joint_attention_check --ranks N [--ulysses U] [--ring R]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/rope_table.h"
#include "dist/launcher.h"
#include "dist/runtime.h"
#include "parallel/usp_attention.h"
#include "sampling/noise.h"

using namespace raylight;

namespace {

constexpr int64_t kHeads = 4, kHeadDim = 12;

int arg(int argc, char** argv, const std::string& name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == "--" + name) return std::atoi(argv[i + 1]);
  return fallback;
}

SequenceLayout joint_layout() {
  SequenceLayout l;
  l.axes = wan_rope_axes(kHeadDim);
  l.rope_theta = 10000.0;
  l.segments.push_back({5, false, {}, {0, 0, 0}});                 // text: no rotation
  l.segments.push_back({24, true, {2, 3, 4}, {0, 0, 0}});          // video tokens
  l.segments.push_back({6, true, {1, 2, 3}, {1, 0, 4}});           // a reference beside it
  return l;
}

// The same tensors on every rank: segment s of q (0), k (1) or v (2).
Tensor full(int which, size_t s, int64_t tokens) {
  return gaussian_noise({tokens, kHeads * kHeadDim}, 0x5e9'0000ull + 16 * which + s);
}

// Attention over the whole sequence on one process, with each segment's rotation.
std::vector<Tensor> reference(Backend& cpu, const SequenceLayout& l) {
  auto joint = [&](int which) {
    Tensor all = full(which, 0, l.segments[0].tokens);
    for (size_t s = 1; s < l.segments.size(); ++s) all = cpu.concat_rows(all, full(which, s, l.segments[s].tokens));
    return all.reshape({l.tokens(), kHeads, kHeadDim});
  };
  Tensor q = joint(0), k = joint(1), v = joint(2);
  const int64_t half = kHeadDim / 2;
  Tensor table = Tensor::empty({l.tokens(), half, 2});
  int64_t row = 0;
  for (const auto& seg : l.segments) {
    if (seg.rotated) {
      Tensor part = rope_table_3d(seg.grid.frames, seg.grid.height, seg.grid.width, l.axes, l.rope_theta, 0,
                                  seg.tokens, seg.offset);
      std::copy(part.f32(), part.f32() + part.numel(), table.f32() + row * half * 2);
    } else {
      for (int64_t i = 0; i < seg.tokens * half; ++i) {
        table.f32()[(row * half) * 2 + 2 * i] = 1.0f;
        table.f32()[(row * half) * 2 + 2 * i + 1] = 0.0f;
      }
    }
    row += seg.tokens;
  }
  cpu.apply_rope(q, table);
  cpu.apply_rope(k, table);
  Tensor out = cpu.attention(q, k, v, -1, nullptr).reshape({l.tokens(), kHeads * kHeadDim});
  std::vector<Tensor> parts;
  row = 0;
  for (const auto& seg : l.segments) {
    parts.push_back(out.slice_rows(row, row + seg.tokens));
    row += seg.tokens;
  }
  return parts;
}

}  // namespace

int main(int argc, char** argv) {
  const int ranks = arg(argc, argv, "ranks", 1);
  if (ranks > 1 && !started_by_mpirun()) exec_under_mpirun(ranks, std::vector<std::string>(argv, argv + argc));
  Runtime::init(&argc, &argv);
  ParallelLayout layout;
  layout.ulysses = arg(argc, argv, "ulysses", 1);
  layout.ring = arg(argc, argv, "ring", 1);
  RankGroups groups = make_rank_groups(layout);
  auto cpu = make_cpu_backend();
  const SequenceLayout l = joint_layout();
  UspAttention attention(*cpu, *groups.ulysses, *groups.ring);
  attention.prepare(l);

  // This rank's rows of every segment, in segment order.
  auto local = [&](int which) {
    Tensor rows;
    for (size_t s = 0; s < l.segments.size(); ++s) {
      Tensor mine = attention.scatter_tokens(full(which, s, l.segments[s].tokens), static_cast<int>(s));
      rows = rows.defined() ? cpu->concat_rows(rows, mine) : mine;
    }
    return rows.reshape({rows.dim(0), kHeads, kHeadDim});
  };
  Tensor out = attention.self_attention(local(0), local(1), local(2));
  out = out.reshape({out.dim(0), kHeads * kHeadDim});
  std::vector<Tensor> gathered;
  int64_t row = 0;
  for (size_t s = 0; s < l.segments.size(); ++s) {
    const int64_t n = attention.local_rows(static_cast<int>(s));
    gathered.push_back(attention.gather_tokens(out.slice_rows(row, row + n), static_cast<int>(s)));
    row += n;
  }
  int code = 0;
  if (Runtime::world_rank() == 0) {
    const std::vector<Tensor> want = reference(*cpu, l);
    double worst = 0;
    for (size_t s = 0; s < want.size(); ++s)
      for (int64_t i = 0; i < want[s].numel(); ++i)
        worst = std::max(worst, static_cast<double>(std::fabs(gathered[s].f32()[i] - want[s].f32()[i])));
    std::printf("joint attention, ulysses %d x ring %d: max difference %.3g\n", layout.ulysses, layout.ring, worst);
    code = worst <= 1e-5 ? 0 : 1;
  }
  groups.world->broadcast(&code, sizeof code, 0);
  Runtime::finalize();
  return code;
}
