// CudaBackend: routes the Backend interface to the op files of this folder (ops.h), which
// queue kernels on the shared Context's stream, and implements the memory interface
// (uploads, downloads, weights, raw bytes) over the Context's allocator and staging
// buffers. Operands arrive checked by the public ops (backend.cpp, ops/*.cpp).
#include "backend/cuda/cuda_backend.h"

#include <cstdio>

#include "backend/fp8_attention.h"

#include "backend/cuda/allocator.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/ops.h"
#include "backend/cuda/transfer_queue.h"

namespace raylight {
namespace {

using cuda::Context;
namespace op = cuda::op;

class CudaBackendImpl final : public CudaBackend, public Fp8AttentionOps {
 public:
  explicit CudaBackendImpl(const CudaOptions& o) : ctx_(o) { op::set_attention_kernel(ctx_, o.attention); }

  std::string name() const override { return "cuda"; }
  Device device() const override { return Device::CUDA; }
  DType compute_dtype() const override { return DType::BF16; }
  bool takes_weight_dtype(DType t) const override { return t == DType::BF16 || t == DType::F8E4M3; }
  const CudaOptions& options() const override { return ctx_.opt; }
  std::string device_name() const override { return ctx_.device_name; }
  bool keeps_weights() const override { return true; }
  void* native_stream() override { return ctx_.stream; }
  void* native_transfer_stream() override { return ctx_.transfers->stream(); }

  // --- Memory ---------------------------------------------------------------------------
  Tensor upload(const Tensor& host) override { return ctx_.upload(host); }
  Tensor upload_f32_impl(const Tensor& host) override {
    Tensor y = ctx_.alloc(host.shape(), DType::F32);
    if (y.nbytes()) ctx_.stage(host.raw(), y.raw(), host.nbytes());
    return y;
  }
  Tensor to_f32_impl(const Tensor& x) override {
    Tensor b = x.dtype() == DType::BF16 ? x : ctx_.to_bf16(x);
    Tensor y = ctx_.alloc(x.shape(), DType::F32);
    cuda::bf16_to_f32(cuda::bp(b), y.data<float>(), b.numel(), ctx_.stream);
    return y;
  }
  Tensor download(const Tensor& t) override { return ctx_.download(t); }
  Tensor empty(const Shape& shape) override { return ctx_.alloc(shape, DType::BF16); }
  Tensor empty_f32(const Shape& shape) override { return ctx_.alloc(shape, DType::F32); }
  Tensor device_bytes(size_t n) override { return ctx_.alloc({static_cast<int64_t>(n)}, DType::U8); }

  Tensor host_bytes(size_t n) override {
    std::shared_ptr<void> pinned = cuda::TransferQueue::allocate_pinned(n);
    if (!pinned) {
      static bool noted = false;
      if (!noted) std::fprintf(stderr, "raylight: page-locked host memory refused; weight uploads will not overlap compute\n");
      noted = true;
      return Backend::host_bytes(n);
    }
    return Tensor::view(pinned.get(), {static_cast<int64_t>(n)}, DType::U8, pinned);
  }

  Tensor weight(const Tensor& stored, float scale) override {
    const CudaOptions& opt = ctx_.opt;
    if (stored.device() == Device::CUDA) {
      if (stored.dtype() == DType::BF16 && scale == 1.0f) return stored;
      // Device bytes (FSDP gathers, offload slots) are used in place: fp8 stays fp8.
      if (stored.dtype() == DType::F8E4M3 && stored.ndim() >= 2 && opt.keep_fp8) return stored.with_scale(scale);
      return ctx_.to_bf16(stored.with_scale(scale));
    }
    if (!stored.is_contiguous()) fail("weight: stored tensor is not contiguous");
    if (stored.dtype() == DType::F8E4M3 && stored.ndim() >= 2 && opt.keep_fp8) {
      Tensor w = ctx_.alloc(stored.shape(), DType::F8E4M3);
      ctx_.stage(stored.raw(), w.raw(), stored.nbytes());
      return w.with_scale(scale);
    }
    Tensor src = cuda::is_storage_float(stored.dtype()) ? stored : stored.to_f32();
    return ctx_.stage_as_bf16(src, scale);
  }

  // --- CudaBackend extras ---------------------------------------------------------------
  void synchronize() override { RL_CUDA(cudaStreamSynchronize(ctx_.stream)); }
  size_t live_bytes() const override { return ctx_.allocator->live_bytes(); }
  void set_memory_limit(size_t bytes) override { ctx_.allocator->set_limit(bytes); }
  size_t peak_device_bytes() const override { return ctx_.allocator->peak_live_bytes(); }
  size_t peak_bytes() const override { return ctx_.allocator->peak_live_bytes(); }
  size_t peak_reserved_bytes() const override { return ctx_.allocator->peak_reserved_bytes(); }
  void reset_peak() override { ctx_.allocator->reset_peak(); }
  void set_profiling(bool on) override { ctx_.profiling = on; }
  void reset_profile() override {
    ctx_.profile();
    ctx_.totals = {};
  }
  CudaProfile profile() override { return ctx_.profile(); }

  Tensor random_weight(const Shape& shape, DType dtype, float mean, float std, uint64_t seed) override {
    if (dtype == DType::F8E4M3 && mean == 0.0f) {
      const float scale = 4.5f * std / 448.0f;
      Tensor w = ctx_.alloc(shape, DType::F8E4M3);
      cuda::random_e4m3(w.data<uint8_t>(), w.numel(), seed, std, scale, ctx_.stream);
      return w.with_scale(scale);
    }
    Tensor w = ctx_.alloc(shape, DType::BF16);
    cuda::random_bf16(cuda::bp(w), w.numel(), seed, mean, std, ctx_.stream);
    return w;
  }

  std::string attention_kernel() const override { return op::attention_kernel(ctx_); }
  void set_attention_kernel(AttentionKernel k) override { op::set_attention_kernel(ctx_, k); }
  void set_fp8_own_kernel(bool on) override { ctx_.opt.fp8_own_kernel = on; }
  bool prepare_attention(int64_t Lq, int64_t Lk, int64_t heads, int64_t head_dim, bool lse) override {
    return op::prepare_attention(ctx_, Lq, Lk, heads, head_dim, lse);
  }
  bool prepare_linears(const std::vector<LinearShape>& shapes) override { return op::prepare_linears(ctx_, shapes); }
  int64_t linear_plans_made() const override { return ctx_.gemm->plans_made(); }
  Tensor attention_fp8_impl(const Tensor& q, const Tensor& k, const Tensor& v, int64_t k_valid, Tensor* lse,
                            int64_t kv_chunk) override {
    return op::attention_fp8(ctx_, q, k, v, k_valid, lse, kv_chunk);
  }

  double time_ms(const std::function<void()>& fn) override {
    cudaEvent_t a = ctx_.event(), b = ctx_.event();
    RL_CUDA(cudaEventRecord(a, ctx_.stream));
    fn();
    RL_CUDA(cudaEventRecord(b, ctx_.stream));
    RL_CUDA(cudaEventSynchronize(b));
    float ms = 0;
    RL_CUDA(cudaEventElapsedTime(&ms, a, b));
    ctx_.recycle(a);
    ctx_.recycle(b);
    return ms;
  }

 protected:
  void write_bytes_impl(const void* src, Tensor& dst, size_t dst_offset, size_t n) override {
    ctx_.stage(src, static_cast<char*>(dst.raw()) + dst_offset, n);
  }
  std::unique_ptr<Pending> start_upload_impl(const Tensor& host, Tensor& dst, size_t dst_offset) override {
    return ctx_.transfers->start_upload(host.raw(), static_cast<char*>(dst.raw()) + dst_offset, host.nbytes());
  }

  // --- Ops: one line each into ops_*.cpp -------------------------------------------------
  Tensor copy_impl(const Tensor& x) override { return op::copy(ctx_, x); }
  Tensor concat_rows_impl(const Tensor& a, const Tensor& b) override { return op::concat_rows(ctx_, a, b); }
  Tensor concat_columns_impl(const Tensor& a, const Tensor& b) override { return op::concat_columns(ctx_, a, b); }
  Tensor linear_impl(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& x_absmax) override {
    return op::linear(ctx_, x, w, b, x_absmax);
  }
  Tensor linear_gelu_tanh_impl(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& x_absmax) override {
    return op::linear_gelu_tanh(ctx_, x, w, b, x_absmax);
  }
  Tensor linear_pair_impl(const Tensor& a, const Tensor& b, const Tensor& w, const Tensor& bias) override {
    return op::linear_pair(ctx_, a, b, w, bias);
  }
  std::vector<Tensor> linears_impl(const Tensor& x, const std::vector<LinearTerm>& terms,
                                   const Tensor& x_absmax) override {
    return op::linears(ctx_, x, terms, x_absmax);
  }
  Tensor layer_norm_impl(const Tensor& x, const Tensor& w, const Tensor& b, float eps) override {
    return op::layer_norm(ctx_, x, w, b, eps);
  }
  Tensor rms_norm_impl(const Tensor& x, const Tensor& w, float eps) override { return op::rms_norm(ctx_, x, w, eps); }
  void add_gated_impl(Tensor& x, const Tensor& y, const Tensor& gate) override { op::add_gated(ctx_, x, y, gate); }
  Tensor add_impl(const Tensor& a, const Tensor& b) override { return op::add(ctx_, a, b); }
  Tensor gelu_tanh_impl(const Tensor& x) override { return op::gelu_tanh(ctx_, x); }
  Tensor gelu_erf_impl(const Tensor& x) override { return op::gelu_erf(ctx_, x); }
  Tensor silu_impl(const Tensor& x) override { return op::silu(ctx_, x); }
  Tensor quick_gelu_impl(const Tensor& x) override { return op::quick_gelu(ctx_, x); }
  Tensor swiglu_impl(const Tensor& gate, const Tensor& up) override { return op::swiglu(ctx_, gate, up); }
  void apply_rope_impl(Tensor& x, const Tensor& table, RopePairs pairs, int64_t first_token) override {
    op::apply_rope(ctx_, x, table, pairs, first_token);
  }
  Tensor attention_impl(const Tensor& q, const Tensor& k, const Tensor& v, AttentionMask mask, Tensor* lse,
                        Fp8Rows* codes) override {
    return op::attention(ctx_, q, k, v, mask, lse, codes);
  }
  Tensor swap_leading_impl(const Tensor& x) override { return op::swap_leading(ctx_, x); }
  void merge_attention_impl(Tensor& out, Tensor& lse, const Tensor& part, const Tensor& part_lse) override {
    op::merge_attention(ctx_, out, lse, part, part_lse);
  }
  Tensor dequantise_impl(const Fp8Rows& x) override { return op::dequantise(ctx_, x); }
  Tensor linear_fp8_rows_impl(const Fp8Rows& x, const Tensor& w, const Tensor& b) override {
    return op::linear_fp8_rows(ctx_, x, w, b);
  }
  Tensor modulate_impl(const Tensor& x, const Tensor& shift, const Tensor& scale) override {
    return op::modulate(ctx_, x, shift, scale);
  }
  Tensor layer_norm_modulate_impl(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                                  bool f32_out, Tensor* absmax) override {
    return op::layer_norm_modulate(ctx_, x, shift, scale, eps, f32_out, absmax);
  }
  Tensor gated_sum_layer_norm_impl(const Tensor& x, const std::vector<GatedUpdate>& updates, Tensor* sum,
                                   const Tensor& w, const Tensor& b, const Tensor& shift, const Tensor& scale, float eps,
                                   Tensor* absmax) override {
    return op::gated_sum_layer_norm(ctx_, x, updates, sum, w, b, shift, scale, eps, absmax);
  }
  Tensor patchify_impl(const Tensor& x, PatchSize p) override { return op::patchify(ctx_, x, p); }
  void qkv_norm_rope_impl(const Tensor& qkv, const Tensor& qw, const Tensor& kw, QkNormSpan span, float eps,
                          const Tensor& table, Tensor& q, Tensor& k, Tensor& v, int64_t row0) override {
    op::qkv_norm_rope(ctx_, qkv, qw, kw, span, eps, table, q, k, v, row0);
  }
  Tensor norm_rope_impl(const Tensor& x, const Tensor& w, QkNormSpan span, float eps, const Tensor& table,
                        int64_t heads) override {
    return op::norm_rope(ctx_, x, w, span, eps, table, heads);
  }
  Tensor unpatchify_impl(const Tensor& t, int64_t gf, int64_t gh, int64_t gw, int64_t c, PatchSize p) override {
    return op::unpatchify(ctx_, t, gf, gh, gw, c, p);
  }
  Tensor attention_offset_bias_impl(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias,
                                    float scale) override {
    return op::attention_offset_bias(ctx_, q, k, v, bias, scale);
  }
  Tensor conv3d_impl(const Tensor& x, const Tensor& past, const Tensor& w, const Tensor& b,
                     const Conv3dSpec& spec) override {
    return op::conv3d(ctx_, x, past, w, b, spec);
  }
  Tensor channel_rms_norm_impl(const Tensor& x, const Tensor& gamma, bool silu) override {
    return op::channel_rms_norm(ctx_, x, gamma, silu);
  }
  Tensor group_norm_impl(const Tensor& x, const Tensor& w, const Tensor& b, const GroupNormSpec& spec) override {
    return op::group_norm(ctx_, x, w, b, spec);
  }
  Tensor upsample_nearest2x_impl(const Tensor& x) override { return op::upsample_nearest2x(ctx_, x); }

 private:
  Context ctx_;
};

}  // namespace

bool cuda_device_available() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return n > 0;
}

std::unique_ptr<CudaBackend> make_cuda_backend(const CudaOptions& options) {
  if (!cuda_device_available()) fail("no CUDA device is available");
  return std::make_unique<CudaBackendImpl>(options);
}

std::unique_ptr<Backend> make_cuda_backend(int device) {
  CudaOptions o;
  o.device = device;
  return make_cuda_backend(o);
}

}  // namespace raylight
