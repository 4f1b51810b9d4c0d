// cuDNN's fp8 flash-attention forward graph (Hopper and newer, cuDNN >= 9.1), the pattern its
// fp8 SDPA engines match (the one cudnn-frontend's sdpa_fp8 node expands to):
//
//   S = Q8 K8^T (fp32) * scale * descale_q * descale_k  ->  padding mask  ->  softmax with
//   stats (P fp32, stats = the lse)  ->  amax_s = amax(P)  ->  P8 = fp8(P * scale_s)
//   ->  O = P8 V8 (fp32) * descale_s * descale_v  ->  amax_o = amax(O)  ->  O * scale_o
//
// Q8/K8/V8 are e4m3 codes in our token-major layout; the descales are device fp32 scalars
// the quantise kernels wrote (no host round trip per call). The output is bf16 when cuDNN
// takes it (fp8 in, bf16 out), else e4m3 codes that the caller converts back.
#include <memory>

#include "backend/cuda/cudnn_graph.h"

#if RAYLIGHT_HAVE_CUDNN
namespace raylight::cuda::cudnn_graph {

std::unique_ptr<Graph> build_sdpa_fp8(cudnnHandle_t handle, int64_t Lq, int64_t Lk, int64_t H, int64_t D, bool lse,
                                      bool masked, bool fp8_out) {
  auto g = std::make_unique<Graph>(handle, masked);
  const cudnnDataType_t f8 = CUDNN_DATA_FP8_E4M3, f32 = CUDNN_DATA_FLOAT;
  const int64_t row = H * D;
  const Dims s_dims{1, H, Lq, Lk}, s_strides{H * Lq * Lk, Lq * Lk, Lk, 1};
  const Dims o_dims{1, H, Lq, D}, o_strides{Lq * row, D, row, 1};
  const Dims one{1, 1, 1, 1};

  auto q = g->tensor(f8, o_dims, o_strides, kQ);
  auto kt = g->tensor(f8, {1, H, D, Lk}, {Lk * row, D, 1, row}, kK);  // K^T as a strided view
  auto v = g->tensor(f8, {1, H, Lk, D}, {Lk * row, D, row, 1}, kV);
  auto o = g->tensor(fp8_out ? f8 : CUDNN_DATA_BFLOAT16, o_dims, o_strides, kO);
  auto scale = g->tensor(f32, one, one, kScale, true);
  auto descale_q = g->tensor(f32, one, one, kDescaleQ);
  auto descale_k = g->tensor(f32, one, one, kDescaleK);
  auto descale_v = g->tensor(f32, one, one, kDescaleV);
  auto descale_s = g->tensor(f32, one, one, kDescaleS);
  auto scale_s = g->tensor(f32, one, one, kScaleS);
  auto scale_o = g->tensor(f32, one, one, kScaleO);
  auto amax_s = g->tensor(f32, one, one, kAmaxS);
  auto amax_o = g->tensor(f32, one, one, kAmaxO);
  cudnnBackendDescriptor_t seq_q = nullptr, seq_kv = nullptr;
  if (masked) {
    seq_q = g->tensor(CUDNN_DATA_INT32, one, one, kSeqQ);
    seq_kv = g->tensor(CUDNN_DATA_INT32, one, one, kSeqKv);
  }

  auto s = g->tensor(f32, s_dims, s_strides);
  g->matmul(q, kt, s, seq_q, seq_kv, nullptr);
  auto s1 = g->tensor(f32, s_dims, s_strides);
  g->pointwise(CUDNN_POINTWISE_MUL, f32, s, scale, nullptr, s1);
  auto s2 = g->tensor(f32, s_dims, s_strides);
  g->pointwise(CUDNN_POINTWISE_MUL, f32, s1, descale_q, nullptr, s2);
  auto s3 = g->tensor(f32, s_dims, s_strides);
  g->pointwise(CUDNN_POINTWISE_MUL, f32, s2, descale_k, nullptr, s3);

  auto p = masked_softmax(g.get(), s3, Lq, Lk, H, seq_q, seq_kv, lse, f32);
  g->reduction(CUDNN_REDUCE_TENSOR_AMAX, p, amax_s);
  auto p8 = g->tensor(f8, s_dims, s_strides);
  g->pointwise(CUDNN_POINTWISE_MUL, f32, p, scale_s, nullptr, p8);

  auto o0 = g->tensor(f32, o_dims, o_strides);
  g->matmul(p8, v, o0, seq_q, nullptr, seq_kv);
  auto o1 = g->tensor(f32, o_dims, o_strides);
  g->pointwise(CUDNN_POINTWISE_MUL, f32, o0, descale_s, nullptr, o1);
  auto o2 = g->tensor(f32, o_dims, o_strides);
  g->pointwise(CUDNN_POINTWISE_MUL, f32, o1, descale_v, nullptr, o2);
  g->pointwise(CUDNN_POINTWISE_MUL, f32, o2, scale_o, nullptr, o);
  g->reduction(CUDNN_REDUCE_TENSOR_AMAX, o2, amax_o);
  g->build_plan();
  return g;
}

}  // namespace raylight::cuda::cudnn_graph
#endif
