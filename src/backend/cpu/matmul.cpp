// y = x W^T + b. W is transposed once per call so the inner loop is an axpy over a
// contiguous output row, which compilers vectorise without reassociating sums; rows are
// split across the worker pool and the N dimension is tiled to stay in cache.
#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "core/parallel_for.h"

namespace raylight::cpu {

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  const int64_t M = x.dim(0), K = x.dim(1), N = w.dim(0);
  const float* xp = x.f32();
  const float* wp = w.f32();
  std::vector<float> wt(static_cast<size_t>(K * N));
  parallel_for(N, 64, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t k = 0; k < K; ++k) wt[k * N + n] = wp[n * K + k];
  });
  Tensor y = Tensor::empty({M, N});
  float* yp = y.f32();
  const float* bp = b.defined() ? b.f32() : nullptr;
  constexpr int64_t kTileN = 512;
  parallel_for(M, 4, [&](int64_t m0, int64_t m1) {
    for (int64_t n0 = 0; n0 < N; n0 += kTileN) {
      const int64_t n1 = std::min(N, n0 + kTileN);
      for (int64_t m = m0; m < m1; ++m) {
        float* yr = yp + m * N;
        if (bp) std::memcpy(yr + n0, bp + n0, (n1 - n0) * 4);
        else std::memset(yr + n0, 0, (n1 - n0) * 4);
        const float* xr = xp + m * K;
        for (int64_t k = 0; k < K; ++k) {
          const float xv = xr[k];
          const float* wr = wt.data() + k * N;
          for (int64_t n = n0; n < n1; ++n) yr[n] += xv * wr[n];
        }
      }
    }
  });
  return y;
}

}  // namespace raylight::cpu
