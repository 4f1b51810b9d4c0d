// The text encoders' activations: quick GELU (CLIP: x sigmoid(1.702 x)) and SwiGLU
// (Llama / Qwen: silu(gate) * up), as pointwise functors on the shared launcher. bf16 in
// and out, fp32 arithmetic; expf (not __expf) like silu, so large |x| saturates cleanly.
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/pointwise.cuh"

namespace raylight::cuda {
namespace {

struct QuickGeluOp {
  const bf16* x;
  bf16* y;
  template <int V> __device__ void apply(int64_t i) const {
    float a[V];
    load_v<V>(x + i, a);
#pragma unroll
    for (int j = 0; j < V; ++j) a[j] = a[j] / (1.f + expf(-1.702f * a[j]));
    store_v<V>(y + i, a);
  }
};

struct SwigluOp {
  const bf16 *gate, *up;
  bf16* y;
  template <int V> __device__ void apply(int64_t i) const {
    float g[V], u[V];
    load_v<V>(gate + i, g);
    load_v<V>(up + i, u);
#pragma unroll
    for (int j = 0; j < V; ++j) g[j] = g[j] / (1.f + expf(-g[j])) * u[j];
    store_v<V>(y + i, g);
  }
};

}  // namespace

void quick_gelu(const bf16* x, bf16* y, int64_t n, cudaStream_t s) { launch(QuickGeluOp{x, y}, n, 8, {x, y}, s); }

void swiglu(const bf16* gate, const bf16* up, bf16* y, int64_t n, cudaStream_t s) {
  launch(SwigluOp{gate, up, y}, n, 8, {gate, up, y}, s);
}

}  // namespace raylight::cuda
