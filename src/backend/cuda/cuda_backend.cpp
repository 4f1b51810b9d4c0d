// CudaBackend: checks shapes and dtypes, allocates outputs from the caching allocator and
// queues the kernels of this folder on one stream. Host<->device traffic goes through two
// pinned staging buffers used in turn, so a weight travels from the checkpoint's memory map
// to the GPU in chunks and never exists as a whole host copy.
#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cuda/allocator.h"
#include "backend/cuda/biased_attention.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cudnn_attention.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/transfer_queue.h"
#include "backend/cuda/video_kernels.h"

namespace raylight {
namespace {

using cuda::bf16;
enum Category { kMatmul, kAttention, kOther };

class CudaBackendImpl final : public CudaBackend {
 public:
  explicit CudaBackendImpl(const CudaOptions& o) : opt_(o) {
    RL_CUDA(cudaSetDevice(o.device));
    RL_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    alloc_ = std::make_shared<cuda::DeviceAllocator>();
    gemm_ = std::make_unique<cuda::Gemm>(stream_);
    transfers_ = std::make_unique<cuda::TransferQueue>(stream_);
    set_attention_kernel(o.attention);
    for (int i = 0; i < 2; ++i) {
      RL_CUDA(cudaMallocHost(&pinned_[i], kStageBytes));
      RL_CUDA(cudaEventCreateWithFlags(&staged_[i], cudaEventDisableTiming));
      RL_CUDA(cudaEventRecord(staged_[i], stream_));
    }
    cudaDeviceProp prop{};
    RL_CUDA(cudaGetDeviceProperties(&prop, o.device));
    device_name_ = prop.name;
  }

  ~CudaBackendImpl() override {
    cudaStreamSynchronize(stream_);
    rope_cache_.clear();
    for (auto& p : timed_ops_) { event_pool_.push_back(p.a); event_pool_.push_back(p.b); }
    for (cudaEvent_t e : event_pool_) cudaEventDestroy(e);
    for (int i = 0; i < 2; ++i) {
      cudaEventDestroy(staged_[i]);
      cudaFreeHost(pinned_[i]);
    }
    gemm_.reset();
    cudnn_.reset();
    transfers_.reset();
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda"; }
  Device device() const override { return Device::CUDA; }
  const CudaOptions& options() const override { return opt_; }
  std::string device_name() const override { return device_name_; }
  bool keeps_weights() const override { return true; }
  void* native_stream() override { return stream_; }

  Tensor upload(const Tensor& host) override {
    if (host.device() == Device::CUDA) return host.dtype() == DType::BF16 ? copy(host) : to_bf16(host);
    Tensor src = host;
    if (!src.is_contiguous()) fail("upload of a non-contiguous tensor");
    if (!is_storage_float(src.dtype())) src = src.to_f32();
    return stage_as_bf16(src, 1.0f);
  }

  Tensor download(const Tensor& t) override {
    if (t.device() == Device::CPU) return t.to_f32().clone();
    Tensor f = t;
    if (t.dtype() != DType::F32) {
      Tensor b = t.dtype() == DType::BF16 ? t : to_bf16(t);
      f = alloc(t.shape(), DType::F32);
      cuda::bf16_to_f32(bp(b), f.data<float>(), b.numel(), stream_);
    }
    Tensor out = Tensor::empty(t.shape());
    RL_CUDA(cudaMemcpyAsync(out.raw(), f.raw(), out.nbytes(), cudaMemcpyDeviceToHost, stream_));
    RL_CUDA(cudaStreamSynchronize(stream_));
    return out;
  }

  Tensor device_bytes(size_t n) override { return alloc({static_cast<int64_t>(n)}, DType::U8); }

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

  void write_bytes(const void* src, Tensor& dst, size_t dst_offset, size_t n) override {
    need_device(dst, "write_bytes");
    if (dst_offset + n > dst.nbytes())
      fail("write_bytes: ", n, " bytes at ", dst_offset, " overrun a buffer of ", dst.nbytes());
    stage(src, static_cast<char*>(dst.raw()) + dst_offset, n);
  }

  std::unique_ptr<Pending> start_upload(const Tensor& host, Tensor& dst, size_t dst_offset) override {
    need_device(dst, "start_upload");
    if (host.device() != Device::CPU) fail("start_upload: the source is not in host memory");
    if (dst_offset + host.nbytes() > dst.nbytes())
      fail("start_upload: ", host.nbytes(), " bytes at ", dst_offset, " overrun a buffer of ", dst.nbytes());
    return transfers_->start_upload(host.raw(), static_cast<char*>(dst.raw()) + dst_offset, host.nbytes());
  }

  void* native_transfer_stream() override { return transfers_->stream(); }

  Tensor weight(const Tensor& stored, float scale) override {
    if (stored.device() == Device::CUDA) {
      if (stored.dtype() == DType::BF16 && scale == 1.0f) return stored;
      // Device bytes (FSDP gathers, offload slots) are used in place: fp8 stays fp8.
      if (stored.dtype() == DType::F8E4M3 && stored.ndim() >= 2 && opt_.keep_fp8) return stored.with_scale(scale);
      return to_bf16(stored.with_scale(scale));
    }
    if (!stored.is_contiguous()) fail("weight: stored tensor is not contiguous");
    if (stored.dtype() == DType::F8E4M3 && stored.ndim() >= 2 && opt_.keep_fp8) {
      Tensor w = alloc(stored.shape(), DType::F8E4M3);
      stage(stored.raw(), w.raw(), stored.nbytes());
      return w.with_scale(scale);
    }
    Tensor src = is_storage_float(stored.dtype()) ? stored : stored.to_f32();
    return stage_as_bf16(src, scale);
  }

  Tensor copy(const Tensor& x) override {
    need_device(x, "copy");
    Tensor y = alloc(x.shape(), x.dtype());
    RL_CUDA(cudaMemcpyAsync(y.raw(), x.raw(), x.nbytes(), cudaMemcpyDeviceToDevice, stream_));
    return y.with_scale(x.scale());
  }

  Tensor concat_rows(const Tensor& a, const Tensor& b) override {
    need_bf16(a, "concat_rows");
    need_bf16(b, "concat_rows");
    if (a.ndim() != 2 || b.ndim() != 2 || a.dim(1) != b.dim(1))
      fail("concat_rows: ", shape_str(a.shape()), " and ", shape_str(b.shape()), " do not stack");
    Scope sc(this, kOther);
    Tensor y = alloc({a.dim(0) + b.dim(0), a.dim(1)}, DType::BF16);
    RL_CUDA(cudaMemcpyAsync(y.raw(), a.raw(), a.nbytes(), cudaMemcpyDeviceToDevice, stream_));
    RL_CUDA(cudaMemcpyAsync(static_cast<char*>(y.raw()) + a.nbytes(), b.raw(), b.nbytes(),
                            cudaMemcpyDeviceToDevice, stream_));
    return y;
  }

  Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) override {
    Tensor y;
    if (!try_linear(x, w, b, cuda::Epilogue::None, &y))
      fail("linear: cuBLASLt has no algorithm for x ", shape_str(x.shape()), " w ", shape_str(w.shape()));
    return y;
  }

  Tensor linear_gelu_tanh(const Tensor& x, const Tensor& w, const Tensor& b) override {
    Tensor y;
    if (try_linear(x, w, b, cuda::Epilogue::Gelu, &y)) return y;
    y = linear(x, w, b);
    Scope sc(this, kOther);
    cuda::unary(cuda::Unary::GeluTanh, bp(y), bp(y), y.numel(), stream_);
    return y;
  }

  Tensor layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps) override {
    return norm(x, w, b, {}, {}, eps, false, "layer_norm");
  }
  Tensor rms_norm(const Tensor& x, const Tensor& w, float eps) override {
    return norm(x, w, {}, {}, {}, eps, true, "rms_norm");
  }
  Tensor layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps) override {
    return norm(x, {}, {}, shift, scale, eps, false, "layer_norm_modulate");
  }

  Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale) override {
    need_bf16(x, "modulate");
    const int64_t D = x.dim(-1);
    const bf16* sh = vec(shift, D, "modulate", "shift");
    const bf16* sc = vec(scale, D, "modulate", "scale");
    if (!sh || !sc) fail("modulate: shift and scale are required");
    Scope s(this, kOther);
    Tensor y = alloc(x.shape(), DType::BF16);
    cuda::modulate(bp(x), sh, sc, bp(y), x.numel() / std::max<int64_t>(D, 1), D, stream_);
    return y;
  }

  void add_gated(Tensor& x, const Tensor& y, const Tensor& gate) override {
    need_bf16(x, "add_gated");
    need_bf16(y, "add_gated");
    if (x.shape() != y.shape())
      fail("add_gated: shapes ", shape_str(x.shape()), " and ", shape_str(y.shape()), " differ");
    const int64_t D = x.dim(-1);
    const bf16* g = vec(gate, D, "add_gated", "gate");
    Scope s(this, kOther);
    cuda::add_gated(bp(x), bp(y), g, x.numel() / std::max<int64_t>(D, 1), D, stream_);
  }

  Tensor gelu_tanh(const Tensor& x) override { return unary(x, cuda::Unary::GeluTanh, "gelu_tanh"); }
  Tensor gelu_erf(const Tensor& x) override { return unary(x, cuda::Unary::GeluErf, "gelu_erf"); }
  Tensor silu(const Tensor& x) override { return unary(x, cuda::Unary::Silu, "silu"); }

  Tensor add(const Tensor& a, const Tensor& b) override {
    need_bf16(a, "add");
    need_bf16(b, "add");
    if (a.shape() != b.shape())
      fail("add: shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()), " differ");
    Scope s(this, kOther);
    Tensor y = alloc(a.shape(), DType::BF16);
    cuda::add(bp(a), bp(b), bp(y), a.numel(), stream_);
    return y;
  }

  void apply_rope(Tensor& x, const Tensor& table) override {
    need_bf16(x, "apply_rope");
    if (x.ndim() != 3 || table.ndim() != 3 || table.dim(0) != x.dim(0) ||
        table.dim(1) * 2 != x.dim(2) || table.dim(2) != 2)
      fail("apply_rope: x ", shape_str(x.shape()), " does not fit table ", shape_str(table.shape()));
    const float* t = device_table(table);
    Scope s(this, kOther);
    cuda::rope(bp(x), t, x.dim(0), x.dim(1), x.dim(2), stream_);
  }

  Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t k_valid, Tensor* lse) override {
    for (const Tensor* t : {&q, &k, &v}) need_bf16(*t, "attention");
    if (q.ndim() != 3 || k.ndim() != 3 || v.ndim() != 3 || k.shape() != v.shape() ||
        q.dim(1) != k.dim(1) || q.dim(2) != k.dim(2))
      fail("attention: q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ",
           shape_str(v.shape()), " do not fit [L, heads, head_dim]");
    const int64_t Lq = q.dim(0), Lk = k.dim(0), H = q.dim(1), D = q.dim(2);
    const int64_t valid = k_valid < 0 ? Lk : std::min(k_valid, Lk);
    if (valid == 0 && Lq > 0) fail("attention: every key is masked");
    if (!cudnn_ && !cuda::flash_attention_supports(D))
      return H == 1 ? attention_by_gemm(q, k, v, valid, lse) : attention_on_cpu(q, k, v, k_valid, lse);
    Tensor o = alloc(q.shape(), DType::BF16);
    float* l = nullptr;
    if (lse) {
      *lse = alloc({H, Lq}, DType::F32);
      l = lse->data<float>();
    }
    {
      Scope s(this, kAttention, 4.0 * Lq * valid * H * D);
      if (cudnn_ && cudnn_->run(bp(q), bp(k), bp(v), bp(o), l, Lq, Lk, H, D, k_valid)) return o;
      if (cuda::flash_attention_supports(D)) {
        cuda::flash_attention(bp(q), bp(k), bp(v), bp(o), l, Lq, Lk, H, D, k_valid, stream_);
        return o;
      }
    }
    if (H == 1) return attention_by_gemm(q, k, v, valid, lse);
    return attention_on_cpu(q, k, v, k_valid, lse);
  }

  // T5's offset-biased attention: the bias row goes up once per call, the rest stays on the
  // device (the default implementation would round-trip q, k, v through host memory).
  Tensor attention_offset_bias(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias_by_offset,
                               float scale) override {
    for (const Tensor* t : {&q, &k, &v}) need_bf16(*t, "biased attention");
    if (q.ndim() != 3 || k.ndim() != 3 || k.shape() != v.shape() || q.dim(1) != k.dim(1) || q.dim(2) != k.dim(2))
      fail("biased attention: q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ",
           shape_str(v.shape()), " do not fit [L, heads, head_dim]");
    const int64_t Lq = q.dim(0), Lk = k.dim(0), H = q.dim(1), D = q.dim(2);
    if (Lk > cuda::kOffsetBiasMaxKeys) return Backend::attention_offset_bias(q, k, v, bias_by_offset, scale);
    const Tensor bias = bias_by_offset.device() == Device::CPU ? bias_by_offset.to_f32() : download(bias_by_offset);
    if (bias.shape() != Shape{H, Lq + Lk - 1})
      fail("biased attention: bias ", shape_str(bias.shape()), ", expected [", H, ", ", Lq + Lk - 1, "]");
    Scope sc(this, kAttention, 4.0 * Lq * Lk * H * D);
    Tensor b = alloc(bias.shape(), DType::F32);
    stage(bias.raw(), b.raw(), bias.nbytes());
    Tensor o = alloc({Lq, H, D}, DType::BF16);
    cuda::offset_bias_attention(bp(q), bp(k), bp(v), b.data<float>(), bp(o), Lq, Lk, H, D, scale, stream_);
    return o;
  }

  // One head of a size neither fused kernel covers (the VAE's middle attention, D = C):
  // S = q k^T / sqrt(D) (cuBLASLt, bf16 scores), row softmax in place, o = P v.
  Tensor attention_by_gemm(const Tensor& q, const Tensor& k, const Tensor& v, int64_t valid, Tensor* lse) {
    const int64_t Lq = q.dim(0), Lk = k.dim(0), D = q.dim(2);
    Scope sc(this, kAttention, 4.0 * Lq * valid * D);
    Tensor s = alloc({Lq, Lk}, DType::BF16);
    if (!gemm_->run(q.raw(), DType::BF16, nullptr, k.raw(), DType::BF16, 1.0f / std::sqrt(float(D)), nullptr,
                    s.raw(), Lq, Lk, D, cuda::Epilogue::None))
      return attention_on_cpu(q, k, v, valid, lse);
    float* l = nullptr;
    if (lse) {
      *lse = alloc({1, Lq}, DType::F32);
      l = lse->data<float>();
    }
    cuda::softmax_rows(bp(s), l, Lq, Lk, valid, stream_);
    Tensor vt = alloc({D, Lk}, DType::BF16);
    cuda::swap_leading(bp(v), bp(vt), Lk, D, 1, stream_);
    Tensor o = alloc(q.shape(), DType::BF16);
    if (!gemm_->run(s.raw(), DType::BF16, nullptr, vt.raw(), DType::BF16, 1.0f, nullptr, o.raw(), Lq, D, Lk,
                    cuda::Epilogue::None))
      fail("attention: cuBLASLt has no algorithm for ", Lq, "x", D, "x", Lk);
    return o;
  }

  Tensor patchify(const Tensor& x, PatchSize p) override {
    need_bf16(x, "patchify");
    if (x.ndim() != 4) fail("patchify: expected [C, F, H, W], got ", shape_str(x.shape()));
    const int64_t C = x.dim(0), F = x.dim(1), H = x.dim(2), W = x.dim(3);
    if (F % p.t || H % p.h || W % p.w)
      fail("patchify: latent ", shape_str(x.shape()), " is not divisible by the patch (", p.t,
           ", ", p.h, ", ", p.w, ")");
    Scope s(this, kOther);
    Tensor y = alloc({(F / p.t) * (H / p.h) * (W / p.w), C * p.volume()}, DType::BF16);
    cuda::patchify(bp(x), bp(y), C, F, H, W, p.t, p.h, p.w, stream_);
    return y;
  }

  Tensor unpatchify(const Tensor& t, int64_t gf, int64_t gh, int64_t gw, int64_t C, PatchSize p) override {
    need_bf16(t, "unpatchify");
    if (t.ndim() != 2 || t.dim(0) != gf * gh * gw || t.dim(1) != C * p.volume())
      fail("unpatchify: tokens ", shape_str(t.shape()), " do not fit a grid ", gf, "x", gh, "x",
           gw, " with ", C * p.volume(), " features");
    Scope s(this, kOther);
    Tensor y = alloc({C, gf * p.t, gh * p.h, gw * p.w}, DType::BF16);
    cuda::unpatchify(bp(t), bp(y), gf, gh, gw, C, p.t, p.h, p.w, stream_);
    return y;
  }

  Tensor empty(const Shape& shape) override { return alloc(shape, DType::BF16); }

  Tensor swap_leading(const Tensor& x) override {
    need_bf16(x, "swap_leading");
    if (x.ndim() < 2) fail("swap_leading needs at least 2 dims, got ", shape_str(x.shape()));
    const int64_t a = x.dim(0), b = x.dim(1), c = a * b == 0 ? 0 : x.numel() / (a * b);
    Shape shape = x.shape();
    std::swap(shape[0], shape[1]);
    Scope s(this, kOther);
    Tensor y = alloc(shape, DType::BF16);
    cuda::swap_leading(bp(x), bp(y), a, b, c, stream_);
    return y;
  }

  void merge_attention(Tensor& out, Tensor& lse, const Tensor& part, const Tensor& part_lse) override {
    need_bf16(out, "merge_attention");
    need_bf16(part, "merge_attention");
    need_device(lse, "merge_attention");
    need_device(part_lse, "merge_attention");
    if (out.shape() != part.shape() || lse.shape() != part_lse.shape() || out.ndim() != 3 ||
        lse.ndim() != 2 || lse.dim(0) != out.dim(1) || lse.dim(1) != out.dim(0) ||
        lse.dtype() != DType::F32 || part_lse.dtype() != DType::F32)
      fail("merge_attention: out ", shape_str(out.shape()), " lse ", shape_str(lse.shape()),
           " part ", shape_str(part.shape()), " part_lse ", shape_str(part_lse.shape()),
           " (lse must be fp32)");
    Scope s(this, kAttention);
    cuda::merge_attention(bp(out), lse.data<float>(), bp(part), part_lse.data<float>(), out.dim(0),
                          out.dim(1), out.dim(2), stream_);
  }

  // --- Video VAE ops (kernels in video_ops.cu) --------------------------------------
  // conv3d: per output frame (or band of its rows), a pixel-major im2col scratch [K, pixels]
  // (K = Cin*kt*kh*kw padded to a multiple of 8) multiplied by the weight rows [Cout, K]
  // through cuBLASLt (fp32 accumulation), so the product lands as the frame's
  // [Cout, pixels] plane; the bias is added after. Pixel-major keeps the scratch's reads
  // and writes contiguous (the K-major layout ran at 27 TFLOP/s, bound by scattered reads).
  Tensor conv3d(const Tensor& x, const Tensor& past, const Tensor& w, const Tensor& b,
                const Conv3dSpec& s) override {
    need_bf16(x, "conv3d");
    if (past.defined()) need_bf16(past, "conv3d");
    need_device(w, "conv3d");
    if (x.ndim() != 4) fail("conv3d: input has shape ", shape_str(x.shape()), ", expected [T, C, H, W]");
    const int64_t T = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
    const int64_t Tp = past.defined() ? past.dim(0) : 0;
    if (past.defined() && (past.ndim() != 4 || past.dim(1) != C || past.dim(2) != H || past.dim(3) != W))
      fail("conv3d: past frames ", shape_str(past.shape()), " do not match input ", shape_str(x.shape()));
    if (w.ndim() != 5 || w.dim(1) != C)
      fail("conv3d: weight ", shape_str(w.shape()), " does not fit input ", shape_str(x.shape()));
    if (s.stride_t < 1 || s.stride_h < 1 || s.stride_w < 1 || s.pad_t < 0 || s.pad_top < 0 ||
        s.pad_bottom < 0 || s.pad_left < 0 || s.pad_right < 0)
      fail("conv3d: strides must be >= 1 and paddings >= 0");
    const int64_t Co = w.dim(0), kt = w.dim(2), kh = w.dim(3), kw = w.dim(4);
    const bf16* bias = vec(b, Co, "conv3d", "bias");
    const int64_t tin = s.pad_t + Tp + T, hin = H + s.pad_top + s.pad_bottom, win = W + s.pad_left + s.pad_right;
    if (tin < kt || hin < kh || win < kw)
      fail("conv3d: kernel ", shape_str(w.shape()), " is larger than the padded input");
    const int64_t To = (tin - kt) / s.stride_t + 1, Ho = (hin - kh) / s.stride_h + 1,
                  Wo = (win - kw) / s.stride_w + 1, P = Ho * Wo;
    const int64_t K = C * kt * kh * kw, Kp = (K + 7) / 8 * 8;
    Scope sc(this, kMatmul, 2.0 * To * P * Co * K);
    Tensor wb = w.dtype() == DType::BF16 ? w : to_bf16(w);
    if (Kp != K) {  // weight rows padded with zeros to the scratch's row length
      Tensor wp = alloc({Co, Kp}, DType::BF16);
      RL_CUDA(cudaMemsetAsync(wp.raw(), 0, wp.nbytes(), stream_));
      RL_CUDA(cudaMemcpy2DAsync(wp.raw(), Kp * 2, wb.raw(), K * 2, K * 2, Co, cudaMemcpyDeviceToDevice, stream_));
      wb = wp;
    }
    Tensor y = alloc({To, Co, Ho, Wo}, DType::BF16);
    cuda::Im2colGeom g{Tp, C, H, W, kt, kh, kw, s.stride_t, s.stride_h, s.stride_w, s.pad_t, s.pad_top,
                       s.pad_left, Ho, Wo};
    // Rows per product: the scratch holds at most ~128M elements (256 MB); its row length
    // is a multiple of 8 so every operand stays 16-byte aligned.
    const int64_t kMaxScratch = int64_t(128) << 20;
    const int64_t band = std::clamp<int64_t>(kMaxScratch / Kp / Wo, 1, std::min<int64_t>(Ho, 65535));
    const int64_t ldp = (band * Wo + 7) / 8 * 8;
    const bool direct = band == Ho && ldp == P;  // the product can land in the frame itself
    Tensor col = alloc({Kp, ldp}, DType::BF16);
    Tensor part = direct ? Tensor() : alloc({Co, ldp}, DType::BF16);
    for (int64_t t = 0; t < To; ++t) {
      bf16* frame = bp(y) + t * Co * P;
      for (int64_t y0 = 0; y0 < Ho; y0 += band) {
        const int64_t y1 = std::min(Ho, y0 + band), n = (y1 - y0) * Wo;
        cuda::im2col3d_rows(bp(x), Tp ? bp(past) : nullptr, g, t, y0, y1, Kp, ldp, bp(col), stream_);
        bf16* dst = direct ? frame : bp(part);
        if (!gemm_->run(wb.raw(), DType::BF16, nullptr, col.raw(), DType::BF16, 1.0f, nullptr, dst, Co, ldp, Kp,
                        cuda::Epilogue::None, /*w_kn=*/true))
          fail("conv3d: cuBLASLt has no algorithm for ", Co, "x", ldp, "x", Kp);
        if (!direct)
          RL_CUDA(cudaMemcpy2DAsync(frame + y0 * Wo, P * 2, dst, ldp * 2, n * 2, Co, cudaMemcpyDeviceToDevice,
                                    stream_));
      }
    }
    if (bias) cuda::add_row_bias(bp(y), bias, Co, P, To, stream_);
    return y;
  }

  Tensor channel_rms_norm(const Tensor& x, const Tensor& gamma, bool silu) override {
    need_bf16(x, "channel_rms_norm");
    if (x.ndim() != 4) fail("channel_rms_norm: expected [T, C, H, W], got ", shape_str(x.shape()));
    const bf16* g = vec(gamma, x.dim(1), "channel_rms_norm", "gamma");
    if (!g) fail("channel_rms_norm: gamma is required");
    Scope sc(this, kOther);
    Tensor y = alloc(x.shape(), DType::BF16);
    cuda::channel_rms_norm(bp(x), g, bp(y), x.dim(0), x.dim(1), x.dim(2) * x.dim(3), silu, stream_);
    return y;
  }

  Tensor upsample_nearest2x(const Tensor& x) override {
    need_bf16(x, "upsample_nearest2x");
    if (x.ndim() != 4) fail("upsample_nearest2x: expected [T, C, H, W], got ", shape_str(x.shape()));
    Scope sc(this, kOther);
    Tensor y = alloc({x.dim(0), x.dim(1), 2 * x.dim(2), 2 * x.dim(3)}, DType::BF16);
    cuda::upsample_nearest2x(bp(x), bp(y), x.dim(0) * x.dim(1), x.dim(2), x.dim(3), stream_);
    return y;
  }

  // --- CudaBackend extras ---------------------------------------------------------
  void synchronize() override { RL_CUDA(cudaStreamSynchronize(stream_)); }
  size_t live_bytes() const override { return alloc_->live_bytes(); }
  void set_memory_limit(size_t bytes) override { alloc_->set_limit(bytes); }
  size_t peak_device_bytes() const override { return alloc_->peak_live_bytes(); }
  size_t peak_bytes() const override { return alloc_->peak_live_bytes(); }
  size_t peak_reserved_bytes() const override { return alloc_->peak_reserved_bytes(); }
  void reset_peak() override { alloc_->reset_peak(); }
  void set_profiling(bool on) override { profiling_ = on; }
  void reset_profile() override {
    profile();
    totals_ = {};
  }
  CudaProfile profile() override {
    synchronize();
    for (auto& p : timed_ops_) {
      float ms = 0;
      RL_CUDA(cudaEventElapsedTime(&ms, p.a, p.b));
      (p.cat == kMatmul ? totals_.matmul_ms : p.cat == kAttention ? totals_.attention_ms : totals_.other_ms) += ms;
      if (p.cat == kMatmul) totals_.matmul_flops += p.flops;
      if (p.cat == kAttention) totals_.attention_flops += p.flops;
      event_pool_.push_back(p.a);
      event_pool_.push_back(p.b);
    }
    timed_ops_.clear();
    return totals_;
  }

  Tensor random_weight(const Shape& shape, DType dtype, float mean, float std, uint64_t seed) override {
    if (dtype == DType::F8E4M3 && mean == 0.0f) {
      const float scale = 4.5f * std / 448.0f;
      Tensor w = alloc(shape, DType::F8E4M3);
      cuda::random_e4m3(w.data<uint8_t>(), w.numel(), seed, std, scale, stream_);
      return w.with_scale(scale);
    }
    Tensor w = alloc(shape, DType::BF16);
    cuda::random_bf16(bp(w), w.numel(), seed, mean, std, stream_);
    return w;
  }

  std::string attention_kernel() const override {
    return cudnn_ ? cudnn_->describe() + " fused attention" : "own mma.sync flash-attention kernel";
  }

  void set_attention_kernel(AttentionKernel k) override {
    if (k == AttentionKernel::Default) {
      const char* e = std::getenv("RAYLIGHT_ATTENTION");
      const std::string v = e ? e : "";
      if (v == "own") k = AttentionKernel::Own;
      else if (v.empty() || v == "cudnn") k = AttentionKernel::Cudnn;
      else fail("RAYLIGHT_ATTENTION must be cudnn or own, got '", v, "'");
    }
    if (k == AttentionKernel::Own) {
      cudnn_.reset();
      return;
    }
    if (cudnn_) return;
    cudnn_ = std::make_unique<cuda::CudnnAttention>(stream_);
    if (!cudnn_->available()) {
      static bool noted = false;
      if (!noted) std::fprintf(stderr, "raylight: %s; attention uses raylight's own kernel\n", cudnn_->describe().c_str());
      noted = true;
      cudnn_.reset();
    }
  }

  double time_ms(const std::function<void()>& fn) override {
    cudaEvent_t a = event(), b = event();
    RL_CUDA(cudaEventRecord(a, stream_));
    fn();
    RL_CUDA(cudaEventRecord(b, stream_));
    RL_CUDA(cudaEventSynchronize(b));
    float ms = 0;
    RL_CUDA(cudaEventElapsedTime(&ms, a, b));
    event_pool_.push_back(a);
    event_pool_.push_back(b);
    return ms;
  }

 private:
  static constexpr size_t kStageBytes = 32u << 20;

  // Brackets one op with events while profiling; a no-op otherwise.
  struct Scope {
    CudaBackendImpl* b;
    int cat;
    double flops;
    cudaEvent_t start = nullptr;
    Scope(CudaBackendImpl* be, int c, double f = 0) : b(be), cat(c), flops(f) {
      if (b->profiling_) {
        start = b->event();
        RL_CUDA(cudaEventRecord(start, b->stream_));
      }
    }
    ~Scope() {
      if (!start) return;
      cudaEvent_t end = b->event();
      cudaEventRecord(end, b->stream_);
      b->timed_ops_.push_back({cat, start, end, flops});
    }
  };
  struct TimedOp {
    int cat;
    cudaEvent_t a, b;
    double flops;
  };

  cudaEvent_t event() {
    if (!event_pool_.empty()) {
      cudaEvent_t e = event_pool_.back();
      event_pool_.pop_back();
      return e;
    }
    cudaEvent_t e;
    RL_CUDA(cudaEventCreate(&e));
    return e;
  }

  static bool is_storage_float(DType t) {
    return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F8E4M3 || t == DType::F8E5M2;
  }

  Tensor alloc(const Shape& shape, DType dtype) {
    const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
    std::shared_ptr<void> owner = alloc_->allocate(bytes);
    if (opt_.poison) RL_CUDA(cudaMemsetAsync(owner.get(), 0xFF, bytes, stream_));
    return Tensor::device_view(owner.get(), shape, dtype, Device::CUDA, owner);
  }

  static bf16* bp(const Tensor& t) { return static_cast<bf16*>(const_cast<void*>(t.raw())); }

  void need_device(const Tensor& t, const char* op) {
    if (!t.defined()) fail(op, ": missing tensor");
    if (t.device() != Device::CUDA) fail(op, ": expected a device tensor, got a host tensor ", shape_str(t.shape()));
    if (!t.is_contiguous()) fail(op, ": expected a contiguous tensor");
  }
  void need_bf16(const Tensor& t, const char* op) {
    need_device(t, op);
    if (t.dtype() != DType::BF16) fail(op, ": expected bf16, got ", dtype_name(t.dtype()));
  }
  const bf16* vec(const Tensor& v, int64_t n, const char* op, const char* what) {
    if (!v.defined()) return nullptr;
    need_bf16(v, op);
    if (v.numel() != n) fail(op, ": ", what, " has shape ", shape_str(v.shape()), ", expected ", n, " elements");
    return bp(v);
  }

  // Host bytes -> device, through the two pinned buffers in turn (each reused only once
  // the copy that last read it has finished).
  void stage(const void* src, void* dst, size_t bytes) {
    for (size_t off = 0; off < bytes; off += kStageBytes) {
      const size_t n = std::min(kStageBytes, bytes - off);
      const int i = turn_++ & 1;
      RL_CUDA(cudaEventSynchronize(staged_[i]));
      std::memcpy(pinned_[i], static_cast<const char*>(src) + off, n);
      RL_CUDA(cudaMemcpyAsync(static_cast<char*>(dst) + off, pinned_[i], n, cudaMemcpyHostToDevice, stream_));
      RL_CUDA(cudaEventRecord(staged_[i], stream_));
    }
  }

  Tensor stage_as_bf16(const Tensor& src, float scale) {
    Tensor y = alloc(src.shape(), DType::BF16);
    if (src.dtype() == DType::BF16 && scale == 1.0f) {
      stage(src.raw(), y.raw(), src.nbytes());
      return y;
    }
    Tensor raw = alloc(src.shape(), src.dtype());
    stage(src.raw(), raw.raw(), src.nbytes());
    cuda::convert_to_bf16(raw.raw(), src.dtype(), scale, bp(y), src.numel(), stream_);
    return y;
  }

  Tensor to_bf16(const Tensor& t) {
    need_device(t, "convert");
    Tensor y = alloc(t.shape(), DType::BF16);
    cuda::convert_to_bf16(t.raw(), t.dtype(), t.scale(), bp(y), t.numel(), stream_);
    return y;
  }

  bool try_linear(const Tensor& x, const Tensor& w, const Tensor& b, cuda::Epilogue ep, Tensor* out) {
    need_bf16(x, "linear");
    need_device(w, "linear");
    if (x.ndim() != 2 || w.ndim() != 2 || x.dim(1) != w.dim(1))
      fail("linear: input ", shape_str(x.shape()), " does not match weight ", shape_str(w.shape()));
    if (w.dtype() != DType::BF16 && w.dtype() != DType::F8E4M3)
      fail("linear: weight dtype ", dtype_name(w.dtype()), " is not bf16 or fp8 e4m3");
    const int64_t M = x.dim(0), K = x.dim(1), N = w.dim(0);
    const bf16* bias = vec(b, N, "linear", "bias");
    Scope s(this, kMatmul, 2.0 * M * N * K);
    Tensor y = alloc({M, N}, DType::BF16);
    bool ok = false;
    if (w.dtype() == DType::BF16) {
      ok = gemm_->run(x.raw(), DType::BF16, nullptr, w.raw(), DType::BF16, 1.0f, bias, y.raw(), M, N, K, ep);
    } else {
      if (opt_.fp8_gemm && K % 16 == 0 && N % 16 == 0) {
        Tensor xq = alloc({M, K}, DType::F8E4M3);
        // amax at [0], the activation's scale at [4]: each on its own 16 bytes. cuBLASLt
        // (13.x, H200) refuses every fp8 algorithm with NOT_SUPPORTED when a scale pointer is
        // only 4-byte aligned, as the scale at [1] was (tests/cuda CudaProbe.Fp8GemmVariants).
        Tensor sc = alloc({8}, DType::F32);
        float* amax = sc.data<float>();
        cuda::absmax(bp(x), M * K, amax, stream_);
        cuda::quantize_e4m3(bp(x), M * K, amax, xq.data<uint8_t>(), amax + 4, stream_);
        ok = gemm_->run(xq.raw(), DType::F8E4M3, amax + 4, w.raw(), DType::F8E4M3, w.scale(), bias,
                        y.raw(), M, N, K, ep);
      }
      if (!ok) {
        Tensor wb = alloc(w.shape(), DType::BF16);
        cuda::convert_to_bf16(w.raw(), DType::F8E4M3, w.scale(), bp(wb), w.numel(), stream_);
        ok = gemm_->run(x.raw(), DType::BF16, nullptr, wb.raw(), DType::BF16, 1.0f, bias, y.raw(), M, N, K, ep);
      }
    }
    if (ok) *out = y;
    return ok;
  }

  Tensor norm(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& shift,
              const Tensor& scale, float eps, bool rms, const char* op) {
    need_bf16(x, op);
    const int64_t D = x.dim(-1);
    const bf16 *wp = vec(w, D, op, "weight"), *bb = vec(b, D, op, "bias");
    const bf16 *sh = vec(shift, D, op, "shift"), *sc = vec(scale, D, op, "scale");
    Scope s(this, kOther);
    Tensor y = alloc(x.shape(), DType::BF16);
    cuda::row_norm(bp(x), wp, bb, sh, sc, bp(y), x.numel() / std::max<int64_t>(D, 1), D, eps, rms, stream_);
    return y;
  }

  Tensor unary(const Tensor& x, cuda::Unary op, const char* name) {
    need_bf16(x, name);
    Scope s(this, kOther);
    Tensor y = alloc(x.shape(), DType::BF16);
    cuda::unary(op, bp(x), bp(y), x.numel(), stream_);
    return y;
  }

  // Rotary tables arrive as host fp32 tensors (or already uploaded); each is made a device
  // fp32 table once and kept with its source tensor, so that address cannot be reused by a
  // different table while cached.
  const float* device_table(const Tensor& table) {
    if (table.device() == Device::CUDA && table.dtype() == DType::F32) return table.data<float>();
    for (auto& [host, dev] : rope_cache_)
      if (host.raw() == table.raw() && host.shape() == table.shape() && host.device() == table.device())
        return dev.data<float>();
    Tensor dev = alloc(table.shape(), DType::F32);
    if (table.device() == Device::CUDA) {
      // A table uploaded as an activation (bf16): widened once; cos/sin keep bf16 rounding.
      need_bf16(table, "apply_rope");
      cuda::bf16_to_f32(bp(table), dev.data<float>(), table.numel(), stream_);
    } else {
      Tensor src = table.to_f32();
      stage(src.raw(), dev.raw(), src.nbytes());
    }
    rope_cache_.emplace_back(table, dev);
    if (rope_cache_.size() > 4) rope_cache_.pop_front();
    return dev.data<float>();
  }

  // Head sizes the kernel does not cover run on the CPU reference (correct, slow).
  Tensor attention_on_cpu(const Tensor& q, const Tensor& k, const Tensor& v, int64_t k_valid, Tensor* lse) {
    Tensor host_lse;
    Tensor o = cpu::attention(download(q), download(k), download(v), k_valid, lse ? &host_lse : nullptr);
    if (lse) {
      *lse = alloc(host_lse.shape(), DType::F32);
      stage(host_lse.raw(), lse->raw(), host_lse.nbytes());
    }
    return upload(o);
  }

  CudaOptions opt_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::TransferQueue> transfers_;
  std::shared_ptr<cuda::DeviceAllocator> alloc_;
  std::unique_ptr<cuda::Gemm> gemm_;
  std::unique_ptr<cuda::CudnnAttention> cudnn_;  // null: our own kernel
  void* pinned_[2] = {nullptr, nullptr};
  cudaEvent_t staged_[2] = {nullptr, nullptr};
  unsigned turn_ = 0;
  std::deque<std::pair<Tensor, Tensor>> rope_cache_;
  bool profiling_ = false;
  std::vector<TimedOp> timed_ops_;
  std::vector<cudaEvent_t> event_pool_;
  CudaProfile totals_;
  std::string device_name_;
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
