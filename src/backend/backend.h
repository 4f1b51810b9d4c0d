// The op set that model code is written against. A model holds a Backend& and never
// touches memory layouts or devices itself; the CPU backend is the reference every other
// backend is tested against.
//
// Conventions: activations are row-major [tokens, features]; attention tensors are
// [tokens, heads, head_dim]; an undefined Tensor (default-constructed) means "absent"
// (no bias, no affine weight).
#pragma once

#include <memory>
#include <string>

#include "core/pending.h"
#include "core/tensor.h"

namespace raylight {

struct PatchSize {
  int t = 1, h = 2, w = 2;
  int volume() const { return t * h * w; }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual Device device() const = 0;
  // The device queue ops run on (a cudaStream_t for CUDA), for communicators that must
  // queue behind them; null on the CPU.
  virtual void* native_stream() { return nullptr; }
  // Device memory: a cap this backend never allocates beyond (--gpu-memory-limit), and the
  // most it has held in tensors. The CPU backend has no device memory: it refuses a cap.
  virtual void set_memory_limit(size_t bytes);
  virtual size_t peak_device_bytes() const { return 0; }

  // Raw bytes for weight stores (FSDP shards and gather buffers, offload slots).
  // device_bytes: uninitialised U8 [n] in this backend's memory (host memory on the CPU).
  virtual Tensor device_bytes(size_t n);
  // host_bytes: U8 [n] in host memory the device copies from without staging (page-locked
  // on a GPU when the system allows it; plain memory on the CPU).
  virtual Tensor host_bytes(size_t n);
  // Copies host bytes into dst at dst_offset now (the source may be reused on return).
  virtual void write_bytes(const void* src, Tensor& dst, size_t dst_offset, size_t n);
  // Starts copying all of `host` (from host_bytes, kept alive by the caller until the copy
  // has run) into dst at dst_offset on a transfer queue beside compute, after the work
  // queued so far; wait() orders later compute after the copy. The CPU copies at once.
  virtual std::unique_ptr<Pending> start_upload(const Tensor& host, Tensor& dst, size_t dst_offset);
  // The transfer queue (a cudaStream_t), so a communicator can queue gathers behind its
  // uploads; null on the CPU.
  virtual void* native_transfer_stream() { return nullptr; }

  // Host tensor (any float dtype) -> compute tensor on this backend.
  virtual Tensor upload(const Tensor& host) = 0;
  // Compute tensor -> contiguous host fp32 tensor.
  virtual Tensor download(const Tensor& t) = 0;
  // Stored checkpoint bytes (host, any dtype, possibly a view into a memory map) and their
  // per-tensor scale -> a weight ready for linear() and the norms. The CPU dequantises to
  // fp32; a GPU backend may keep fp8 codes and carry the scale on the tensor.
  virtual Tensor weight(const Tensor& stored, float scale) = 0;
  // Whether weights made by weight() should be kept (device memory) rather than remade on
  // each use (the CPU converts from the memory map each time and holds nothing).
  virtual bool keeps_weights() const = 0;
  virtual Tensor copy(const Tensor& x) = 0;
  // Uninitialised activation storage of this backend (compute dtype when dtype is F32).
  virtual Tensor empty(const Shape& shape);
  // Rows of a above rows of b (same trailing size).
  virtual Tensor concat_rows(const Tensor& a, const Tensor& b) = 0;
  // a [M, Na] beside b [M, Nb] -> [M, Na + Nb] (Flux's single-stream blocks join the
  // attention output and the MLP activation for one product). The default is a host round
  // trip through the CPU kernel.
  virtual Tensor concat_columns(const Tensor& a, const Tensor& b);

  // y = x W^T + b; x [M, K], w [N, K] (PyTorch Linear layout), b [N] or undefined.
  virtual Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) = 0;
  // Normalises each row of x [M, D]; weight/bias [D] or undefined.
  virtual Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                            float eps) = 0;
  virtual Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) = 0;
  // x * (1 + scale) + shift with shift/scale [D] broadcast over rows.
  virtual Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale) = 0;
  // x += y * gate, gate [D] broadcast over rows, or undefined for a plain residual add.
  virtual void add_gated(Tensor& x, const Tensor& y, const Tensor& gate) = 0;
  virtual Tensor gelu_tanh(const Tensor& x) = 0;
  virtual Tensor gelu_erf(const Tensor& x) = 0;
  virtual Tensor silu(const Tensor& x) = 0;
  virtual Tensor add(const Tensor& a, const Tensor& b) = 0;

  // Rotates adjacent channel pairs of x [L, H, D] in place by the angles of
  // table [L, D/2, 2] (cos, sin), the same rotation for every head.
  virtual void apply_rope(Tensor& x, const Tensor& table) = 0;
  // softmax(q k^T / sqrt(D)) v per head. q [Lq, H, D], k/v [Lk, H, D]; keys at index
  // >= k_valid are masked out (k_valid < 0: all keys). When lse is given it receives the
  // natural-log sum of exponentials of the scaled scores, [H, Lq] (Ring attention merges by it).
  virtual Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t k_valid,
                           Tensor* lse) = 0;
  // softmax(q k^T * scale + bias) v with an additive bias that depends only on the offset
  // between key and query (T5's relative position bias): bias_by_offset is host fp32
  // [H, Lq + Lk - 1] and query i / key j read entry j - i + Lq - 1. The default runs the CPU
  // kernel on host copies; a device backend overrides it to stay on the device.
  virtual Tensor attention_offset_bias(const Tensor& q, const Tensor& k, const Tensor& v,
                                       const Tensor& bias_by_offset, float scale);

  // Fused ops. Each has a default composed from the ops above (backend.cpp), so a backend
  // only overrides the ones it can do in fewer passes over memory.
  // modulate(layer_norm(x, {}, {}, eps), shift, scale): the DiT's adaLN.
  virtual Tensor layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale,
                                     float eps);
  // gelu_tanh(linear(x, w, b)): the FFN's first product with its activation.
  virtual Tensor linear_gelu_tanh(const Tensor& x, const Tensor& w, const Tensor& b);

  // [C, F, H, W] -> [tokens, C*pt*ph*pw], features ordered (c, pt, ph, pw) like a Conv3d
  // weight, tokens ordered (f, h, w).
  virtual Tensor patchify(const Tensor& x, PatchSize p) = 0;
  // [tokens, pt*ph*pw*C] (features ordered (pt, ph, pw, c)) -> [C, F*pt, H*ph, W*pw] for a
  // token grid (F, H, W).
  virtual Tensor unpatchify(const Tensor& tokens, int64_t grid_f, int64_t grid_h,
                            int64_t grid_w, int64_t channels, PatchSize p) = 0;

  // Sequence-parallel helpers. The defaults run the CPU kernels on a host copy, which is
  // correct on every backend; device backends override them to stay on the device.
  // x [a, b, c] -> [b, a, c] (packs heads per peer for the Ulysses all-to-all).
  virtual Tensor swap_leading(const Tensor& x);
  // Folds a partial attention result over some keys into an accumulator over others:
  // out [L, H, D] and lse [H, L] are updated in place, weighted by exp(lse).
  virtual void merge_attention(Tensor& out, Tensor& lse, const Tensor& part,
                               const Tensor& part_lse);

  // Video VAE ops. A clip is frame-major [T, C, H, W], so frames are rows of [T, C*H*W]
  // (slice_rows / concat_rows move them). The defaults (backend_video_ops.cpp) run the CPU
  // kernels on a host copy; device backends override them to stay on the device.
  struct Conv3dSpec {
    int stride_t = 1, stride_h = 1, stride_w = 1;
    int pad_t = 0;  // zero frames in front of (past, x); never any behind (causal)
    int pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;  // zeros around each frame
  };
  // Cross-correlation (PyTorch Conv3d) of the frames (pad_t zeros, past, x) with
  // w [Cout, Cin, kt, kh, kw] plus b [Cout] (or undefined): x [T, Cin, H, W], past
  // [Tp, Cin, H, W] or undefined (earlier frames, e.g. a causal conv's cache) -> [T', Cout, H', W'].
  virtual Tensor conv3d(const Tensor& x, const Tensor& past, const Tensor& w, const Tensor& b,
                        const Conv3dSpec& spec);
  // x [T, C, H, W]: each pixel's C-vector divided by its L2 norm (at least 1e-12), times
  // sqrt(C) * gamma [C] (the Wan VAE's RMS_norm); then SiLU when `silu`.
  virtual Tensor channel_rms_norm(const Tensor& x, const Tensor& gamma, bool silu);
  // x [T, C, H, W] -> [T, C, 2H, 2W], every pixel repeated 2x2 (nearest / nearest-exact).
  virtual Tensor upsample_nearest2x(const Tensor& x);
};

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace raylight
