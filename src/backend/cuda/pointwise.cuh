// The launcher every pointwise kernel shares: an op is a small functor applied to V
// consecutive elements (apply<V>(first index)); launch() picks V = 8 (16-byte accesses) when
// sizes and pointers allow, else V = 1, so odd test shapes and the real aligned shapes run
// the same code. Included by elementwise.cu and activations.cu.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "backend/cuda/cuda_check.h"

namespace raylight::cuda {
namespace {

template <int V, class Op>
__global__ void ew_kernel(Op op, int64_t nvec) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < nvec;
       i += int64_t(gridDim.x) * blockDim.x)
    op.template apply<V>(i * V);
}

bool aligned16(std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (p && reinterpret_cast<uintptr_t>(p) % 16) return false;
  return true;
}

// `cols` is the broadcast period: vectors must not straddle rows, so V = 8 needs cols % 8 == 0.
template <class Op>
void launch(const Op& op, int64_t n, int64_t cols, std::initializer_list<const void*> ptrs,
            cudaStream_t s) {
  if (n == 0) return;
  const bool vec = n % 8 == 0 && cols % 8 == 0 && aligned16(ptrs);
  const int64_t nvec = vec ? n / 8 : n;
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((nvec + threads - 1) / threads, 132 * 32);
  if (vec) ew_kernel<8><<<blocks, threads, 0, s>>>(op, nvec);
  else ew_kernel<1><<<blocks, threads, 0, s>>>(op, nvec);
  RL_CUDA_LAUNCH();
}

}  // namespace
}  // namespace raylight::cuda
