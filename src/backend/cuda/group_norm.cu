#include "backend/cuda/group_norm.h"

#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_math.cuh"

namespace raylight::cuda {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kThreads = 256;
constexpr int64_t kChunk = 4096;  // values per partial-statistics block

struct Layout {
  int64_t samples, frames, cg, n, chunks;  // n: values per (sample, group)
};

Layout layout(const GroupNormGeom& g) {
  Layout l;
  l.samples = g.over_frames ? 1 : g.T;
  l.frames = g.over_frames ? g.T : 1;
  l.cg = g.C / g.groups;
  l.n = l.frames * l.cg * g.S;
  l.chunks = (l.n + kChunk - 1) / kChunk;
  return l;
}

// Value e of group (s, g): frame s * frames + e / (cg * S), then e % (cg * S) into the
// group's contiguous channel planes.
__device__ __forceinline__ int64_t at(const GroupNormGeom& g, const Layout& l, int64_t s, int64_t grp, int64_t e) {
  const int64_t per_frame = l.cg * g.S;
  return ((s * l.frames + e / per_frame) * g.C + grp * l.cg) * g.S + e % per_frame;
}

// Block (chunk c, group sg): count, mean and M2 of its chunk, two passes (the second from cache).
__global__ void partial_stats_kernel(const bf16* __restrict__ x, GroupNormGeom g, Layout l, float* __restrict__ part) {
  __shared__ float scratch[32];
  const int64_t c = blockIdx.x, sg = blockIdx.y, s = sg / g.groups, grp = sg % g.groups;
  const int64_t e0 = c * kChunk, e1 = min(l.n, e0 + kChunk);
  float sum = 0.f;
  for (int64_t e = e0 + threadIdx.x; e < e1; e += blockDim.x) sum += __bfloat162float(x[at(g, l, s, grp, e)]);
  const float count = float(e1 - e0);
  const float mean = block_sum(sum, scratch) / count;
  float m2 = 0.f;
  for (int64_t e = e0 + threadIdx.x; e < e1; e += blockDim.x) {
    const float d = __bfloat162float(x[at(g, l, s, grp, e)]) - mean;
    m2 += d * d;
  }
  m2 = block_sum(m2, scratch);
  if (threadIdx.x == 0) {
    float* p = part + (sg * l.chunks + c) * 3;
    p[0] = count;
    p[1] = mean;
    p[2] = m2;
  }
}

// One thread per group: the chunks folded in order, then mean and 1/sqrt(var + eps).
__global__ void finish_stats_kernel(const float* __restrict__ part, Layout l, int64_t groups_total, float eps,
                                    float* __restrict__ stats) {
  const int64_t sg = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (sg >= groups_total) return;
  double n = 0, mean = 0, m2 = 0;
  for (int64_t c = 0; c < l.chunks; ++c) {
    const float* p = part + (sg * l.chunks + c) * 3;
    const double nb = p[0], mb = p[1], delta = mb - mean, total = n + nb;
    mean += delta * nb / total;
    m2 += p[2] + delta * delta * n * nb / total;
    n = total;
  }
  stats[2 * sg] = float(mean);
  stats[2 * sg + 1] = float(1.0 / sqrt(m2 / n + double(eps)));
}

__global__ void apply_kernel(const bf16* __restrict__ x, const bf16* __restrict__ w, const bf16* __restrict__ b,
                             bf16* __restrict__ y, GroupNormGeom g, int64_t cg, const float* __restrict__ stats,
                             bool silu) {
  const int64_t total = g.T * g.C * g.S;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = (e / g.S) % g.C, t = e / (g.C * g.S);
    const int64_t sg = (g.over_frames ? 0 : t) * g.groups + c / cg;
    float v = (__bfloat162float(x[e]) - stats[2 * sg]) * stats[2 * sg + 1];
    if (w) v *= __bfloat162float(w[c]);
    if (b) v += __bfloat162float(b[c]);
    if (silu) v = v / (1.f + expf(-v));
    y[e] = __float2bfloat16(v);
  }
}

}  // namespace

int64_t group_norm_scratch_floats(const GroupNormGeom& g) {
  const Layout l = layout(g);
  return l.samples * g.groups * (l.chunks * 3 + 2);
}

void group_norm(const bf16* x, const bf16* weight, const bf16* bias, bf16* y, const GroupNormGeom& g, float eps,
                bool silu, float* scratch, cudaStream_t s) {
  const Layout l = layout(g);
  const int64_t groups_total = l.samples * g.groups, total = g.T * g.C * g.S;
  if (total == 0) return;
  if (g.groups < 1 || g.C % g.groups != 0) fail("group_norm: ", g.C, " channels in ", g.groups, " groups");
  if (groups_total > 65535 || l.chunks > 2147483647)
    fail("group_norm: ", groups_total, " groups of ", l.n, " values exceed the launch grid");
  float* part = scratch;
  float* stats = scratch + groups_total * l.chunks * 3;
  partial_stats_kernel<<<dim3(unsigned(l.chunks), unsigned(groups_total)), kThreads, 0, s>>>(x, g, l, part);
  RL_CUDA_LAUNCH();
  finish_stats_kernel<<<unsigned((groups_total + 127) / 128), 128, 0, s>>>(part, l, groups_total, eps, stats);
  RL_CUDA_LAUNCH();
  const unsigned blocks = unsigned(std::min<int64_t>((total + kThreads - 1) / kThreads, 132 * 32));
  apply_kernel<<<blocks, kThreads, 0, s>>>(x, weight, bias, y, g, l.cg, stats, silu);
  RL_CUDA_LAUNCH();
}

}  // namespace raylight::cuda
