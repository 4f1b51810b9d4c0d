// The CPU emulation of fp8 attention (backend/fp8_attention.h): the operands quantised the
// way the CUDA path quantises them (q and k rotated per head, K and V smoothed, one e4m3
// scale per tensor, P * 448 as e4m3), the rest exact in double; over key chunks where the
// CUDA path splits the call (backend/fp8_kv_chunks.h), each chunk's output rounded to e4m3
// as cuDNN's is, then merged by the chunks' lse; the lse returned is of the true scores (k's
// mean, which smoothing took out of them, added back). It is the reference the CUDA fp8 path
// is held to, and the measure of what fp8 costs in accuracy against exact attention.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/fp8_kv_chunks.h"
#include "backend/fp8_rotation.h"
#include "core/dtype.h"
#include "core/parallel_for.h"

namespace raylight::cpu {
namespace {

constexpr float kE4m3Max = 448.0f;

float e4m3(float x) { return e4m3_to_f32(f32_to_e4m3(x)); }

// backend/fp8_rotation.h's H S x / sqrt(D) on every head of x [rows, H, D].
std::vector<float> rotated(const Tensor& x) {
  const int64_t D = x.dim(2);
  std::vector<float> y(x.f32(), x.f32() + x.numel());
  for (int64_t h0 = 0; h0 < x.numel(); h0 += D) fp8_rotate_head(y.data() + h0, D);
  return y;
}

// x [rows, C] (rotated per head first when rotate) - mean (when smooth: the fp32 mean over
// rows [0, n) of each column), quantised with one scale from rows [0, n) and dequantised
// again: the values the fp8 product sees.
std::vector<float> quantised(const Tensor& x, int64_t n, bool smooth, bool rotate, float* scale_out = nullptr,
                             std::vector<float>* mean_out = nullptr) {
  const int64_t rows = x.dim(0), C = x.numel() / std::max<int64_t>(rows, 1);
  const std::vector<float> turned = rotate ? rotated(x) : std::vector<float>();
  const float* p = rotate ? turned.data() : x.f32();
  std::vector<float> mean(C, 0.0f);
  if (smooth && n > 0) {
    std::vector<double> sum(C, 0.0);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < C; ++c) sum[c] += p[r * C + c];
    for (int64_t c = 0; c < C; ++c) mean[c] = static_cast<float>(sum[c] / double(n));
  }
  float amax = 0;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < C; ++c) {
      const float y = p[r * C + c] - mean[c];
      amax = std::isfinite(y) ? std::max(amax, std::fabs(y)) : std::numeric_limits<float>::infinity();
    }
  const float scale = (amax > 0 && std::isfinite(amax)) ? kE4m3Max / amax : 1.0f;
  if (scale_out) *scale_out = scale;
  if (mean_out) *mean_out = mean;
  std::vector<float> out(static_cast<size_t>(rows * C));
  for (int64_t i = 0; i < rows * C; ++i) out[i] = e4m3((p[i] - mean[i % C]) * scale) / scale;
  return out;
}

// One query row of head h against keys [begin, begin + n): the output rounded to e4m3 codes
// scaled like v (on Hopper cuDNN's fp8 attention has no bf16 output), before v's mean comes
// back, into out[D]; returns the row's lse. P is quantised as the flash kernel does it:
// exp(s - row max) (in (0, 1]) x 448 as e4m3, before the row sum divides it; with key chunks
// the maximum and the sum are the chunk's, as in each cuDNN call.
struct Row {
  const float* q;
  const std::vector<float>& k8;
  const std::vector<float>& v8;
  int64_t H, h, D;
  double scale;
  float v_scale;
};

double attend(const Row& r, int64_t begin, int64_t n, std::vector<double>& scores, std::vector<double>& acc,
              float* out) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < n; ++j) {
    const float* kr = r.k8.data() + ((begin + j) * r.H + r.h) * r.D;
    double s = 0;
    for (int64_t d = 0; d < r.D; ++d) s += static_cast<double>(r.q[d]) * kr[d];
    scores[j] = s * r.scale;
    mx = std::max(mx, scores[j]);
  }
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += std::exp(scores[j] - mx);
  std::fill(acc.begin(), acc.end(), 0.0);
  for (int64_t j = 0; j < n; ++j) {
    const double p8 = e4m3(static_cast<float>(std::exp(scores[j] - mx) * kE4m3Max)) / double(kE4m3Max) / sum;
    const float* vr = r.v8.data() + ((begin + j) * r.H + r.h) * r.D;
    for (int64_t d = 0; d < r.D; ++d) acc[d] += p8 * vr[d];
  }
  for (int64_t d = 0; d < r.D; ++d) out[d] = e4m3(static_cast<float>(acc[d]) * r.v_scale) / r.v_scale;
  return mx + std::log(sum);
}

}  // namespace

Tensor attention_fp8(const Tensor& q, const Tensor& k, const Tensor& v, int64_t valid, Tensor* lse, int64_t kv_chunk) {
  const int64_t Lq = q.dim(0), Lk = k.dim(0), H = q.dim(1), D = q.dim(2);
  float v_scale = 1;
  std::vector<float> v_mean;
  // q and k rotated alike (q . k unchanged, outlier channels spread), v as it is; one
  // quantisation over all valid keys, chunks or not.
  const bool rotate = fp8_rotates(D);
  std::vector<float> k_mean;
  const std::vector<float> q8 = quantised(q, Lq, false, rotate), k8 = quantised(k, valid, true, rotate, nullptr, &k_mean),
                           v8 = quantised(v, valid, true, false, &v_scale, &v_mean);
  // The scores the kernels see are shifted by q . mean_k / sqrt(D) per row (k smoothed): the
  // returned lse gets it back, so it is the lse of the true scores (Ring attention merges key
  // blocks, each with its own mean, by it). The mean is of rotated k: rotated back per head.
  if (rotate)
    for (int64_t h = 0; h < H; ++h) fp8_unrotate_head(k_mean.data() + h * D, D);
  // Key chunks as the CUDA path runs them (none: one range over the valid keys).
  std::vector<Fp8KvChunk> chunks = fp8_kv_chunks(Lk, valid, kv_chunk);
  const bool merged = !chunks.empty();
  if (!merged) chunks.push_back({0, valid, valid});
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  Tensor out = Tensor::empty({Lq, H, D});
  if (lse) *lse = Tensor::empty({H, Lq});
  float* op = out.f32();
  float* lp = lse ? lse->f32() : nullptr;
  const int64_t n = static_cast<int64_t>(chunks.size());
  parallel_for(H * Lq, 8, [&](int64_t r0, int64_t r1) {
    std::vector<double> scores(valid), acc(D), part_lse(n);
    std::vector<float> parts(static_cast<size_t>(n * D));
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t h = r / Lq, i = r % Lq;
      const Row row{q8.data() + (i * H + h) * D, k8, v8, H, h, D, scale, v_scale};
      for (int64_t c = 0; c < n; ++c)
        part_lse[c] = attend(row, chunks[c].begin, chunks[c].valid, scores, acc, parts.data() + c * D);
      float* orow = op + (i * H + h) * D;
      const float* mean = v_mean.data() + h * D;
      double shift = 0;  // q . mean_k / sqrt(D), from the unquantised q
      if (lp) {
        const float* qrow = q.f32() + (i * H + h) * D;
        for (int64_t d = 0; d < D; ++d) shift += double(qrow[d]) * k_mean[h * D + d];
        shift *= scale;
      }
      if (!merged) {  // v's mean comes back after (rows of P sum to 1)
        for (int64_t d = 0; d < D; ++d) orow[d] = parts[d] + mean[d];
        if (lp) lp[h * Lq + i] = static_cast<float>(part_lse[0] + shift);
        continue;
      }
      // The merge: each chunk's output weighted by its share of the row's softmax mass.
      const double m = *std::max_element(part_lse.begin(), part_lse.end());
      double total = 0;
      for (int64_t c = 0; c < n; ++c) total += std::exp(part_lse[c] - m);
      const double row_lse = m + std::log(total);
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t c = 0; c < n; ++c) {
        const double w = std::exp(part_lse[c] - row_lse);
        for (int64_t d = 0; d < D; ++d) acc[d] += w * parts[c * D + d];
      }
      for (int64_t d = 0; d < D; ++d) orow[d] = static_cast<float>(acc[d] + mean[d]);
      if (lp) lp[h * Lq + i] = static_cast<float>(row_lse + shift);
    }
  });
  return out;
}

}  // namespace raylight::cpu
