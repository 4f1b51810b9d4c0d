// The op set that model code is written against. A model holds a Backend& and never
// touches memory layouts or devices itself; the CPU backend is the reference every other
// backend is tested against (tests/backend runs every op on every backend).
//
// Every op is a public non-virtual function that checks its operands (shapes, device,
// dtype) once, in backend.cpp or ops/*.cpp, returns at once when its output is empty, and
// then calls the backend's protected *_impl: a backend implements only the math and may
// assume well-formed, non-empty operands. Ops of one model family live in mixins with their
// own headers (ops/dit_ops.h, ops/t5_ops.h, ops/vae_ops.h); this header holds the ops every
// family shares and the memory interface.
//
// Conventions: activations are row-major [tokens, features]; attention tensors are
// [tokens, heads, head_dim]; an undefined Tensor (default-constructed) means "absent"
// (no bias, no affine weight). Activations live on the backend's device in its
// compute_dtype(); weights are what weight() made.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/fp8_rows.h"
#include "backend/ops/dit_ops.h"
#include "backend/ops/t5_ops.h"
#include "backend/ops/vae_ops.h"
#include "core/pending.h"
#include "core/tensor.h"

namespace raylight {

// How RoPE pairs the channels of a head: Adjacent rotates (2i, 2i+1) (Wan, Flux,
// HunyuanVideo, Qwen-Image's DiT); Halves rotates (i, i + D/2), PyTorch's rotate_half
// (Llama, Qwen2.5-VL). Pair i turns by the table's angle i either way.
enum class RopePairs { Adjacent, Halves };

// One product of Backend::linears: x w^T + b (b may be undefined), through gelu_tanh when
// `gelu_tanh` (linear_gelu_tanh's fused epilogue).
struct LinearTerm {
  Tensor w, b;
  bool gelu_tanh = false;
};

// Which keys each query of an attention sees (the public ops resolve it for *_impl).
struct AttentionMask {
  int64_t k_valid;  // keys at index >= k_valid are masked out (padding); in [1, Lk]
  bool causal;      // query i sees keys j <= i only (Lq == Lk)
};

class Backend : public DitOps, public T5Ops, public VaeOps {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual Device device() const = 0;
  // The dtype activations have on this backend (F32 on the CPU, BF16 on CUDA).
  virtual DType compute_dtype() const = 0;
  // Whether a weight() result of this dtype may feed linear and the convolutions (a GPU
  // backend keeps fp8 codes with their scale); vectors (biases, norm weights) are always
  // compute_dtype().
  virtual bool takes_weight_dtype(DType t) const { return t == compute_dtype(); }
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
  // Copies host bytes into dst (this backend's memory) at dst_offset now (the source may be
  // reused on return).
  void write_bytes(const void* src, Tensor& dst, size_t dst_offset, size_t n);
  // Starts copying all of `host` (from host_bytes, kept alive by the caller until the copy
  // has run) into dst at dst_offset on a transfer queue beside compute, after the work
  // queued so far; wait() orders later compute after the copy. The CPU copies at once.
  std::unique_ptr<Pending> start_upload(const Tensor& host, Tensor& dst, size_t dst_offset);
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
  // Uninitialised activation storage of this backend (compute dtype), and fp32 storage on
  // its device (log-sum-exp).
  virtual Tensor empty(const Shape& shape);
  virtual Tensor empty_f32(const Shape& shape);

  // --- Ops ------------------------------------------------------------------------------
  // Precise operands: a DiT keeps its residual stream, time embedding and modulation in
  // fp32 as the reference code does (autocast(float32) regions), while products and
  // attention run in the compute dtype. So linear, add, silu, the row norms (layer_norm,
  // rms_norm, layer_norm_modulate) and add_gated also take fp32 operands on the device:
  // linear, add and silu of an fp32 operand give fp32; the norms always give the compute
  // dtype (the next product's operand); add_gated adds into x of either dtype. On the CPU
  // every activation is fp32 already and these are the ordinary ops.
  // x widened to fp32 on this device (x itself when it is fp32 already).
  Tensor to_f32(const Tensor& x);
  // Host tensor -> fp32 tensor on this device, no rounding to the compute dtype on the way.
  Tensor upload_f32(const Tensor& host);

  // A copy of x (any dtype, on this backend's device).
  Tensor copy(const Tensor& x);
  // Rows of a above rows of b (2-D, same trailing size).
  Tensor concat_rows(const Tensor& a, const Tensor& b);
  // a [M, Na] beside b [M, Nb] -> [M, Na + Nb] (Flux's single-stream blocks join the
  // attention output and the MLP activation for one product).
  Tensor concat_columns(const Tensor& a, const Tensor& b);
  // y = x W^T + b; x [M, K], w [N, K] (PyTorch Linear layout), b [N] or undefined. (The
  // q/k/v biases of Qwen and CLIP are this bias: no op of their own.)
  // x_absmax (here and in linear_gelu_tanh, linears): undefined, or max |x| over x as stored,
  // fp32 with one element on this device, as a norm writes it for its output (dit_ops.h's
  // `absmax`). A GPU's fp8 product then quantises x by it instead of measuring x in a pass
  // of its own (the same codes: the caller owes the exact value); bf16 weights and the CPU
  // ignore it. Its shape, dtype and device are checked.
  Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& x_absmax = {});
  // gelu_tanh(linear(x, w, b)): the FFN's first product with its activation.
  Tensor linear_gelu_tanh(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& x_absmax = {});
  // linear(concat_columns(a, b), w, bias) without the concatenation: a [M, Ka] beside
  // b [M, Kb] times w [N, Ka + Kb] (Flux's single blocks: [attention | gelu(mlp)] through
  // linear2). A GPU may round the first half's partial sum to the compute dtype.
  Tensor linear_pair(const Tensor& a, const Tensor& b, const Tensor& w, const Tensor& bias);
  // Several products over one input: out[i] = linear (or linear_gelu_tanh) of x by terms[i],
  // exactly those ops' results. A GPU quantises x once for all its fp8 weights (a block's
  // q, k and v read one input) instead of once per product. x in the compute dtype.
  std::vector<Tensor> linears(const Tensor& x, const std::vector<LinearTerm>& terms, const Tensor& x_absmax = {});
  // Normalises each row of x [.., D]; weight/bias [D] or undefined.
  Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps);
  Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps);
  // x += y * gate, gate [D] broadcast over rows, or undefined for a plain residual add.
  void add_gated(Tensor& x, const Tensor& y, const Tensor& gate);
  Tensor add(const Tensor& a, const Tensor& b);
  Tensor gelu_tanh(const Tensor& x);
  Tensor gelu_erf(const Tensor& x);
  Tensor silu(const Tensor& x);
  // x * sigmoid(1.702 x): CLIP's activation.
  Tensor quick_gelu(const Tensor& x);
  // silu(gate) * up, elementwise: the Llama / Qwen MLP between its products.
  Tensor swiglu(const Tensor& gate, const Tensor& up);

  // Rotates the channel pairs of tokens [first_token, first_token + n) of x [L, H, D] in
  // place by the angles of table [n, D/2, 2] (cos, sin), the same rotation for every head;
  // the other tokens (a joint sequence's text, say) are left as they are. The table is host
  // fp32 or already on this backend's device.
  void apply_rope(Tensor& x, const Tensor& table, RopePairs pairs = RopePairs::Adjacent,
                  int64_t first_token = 0);
  // softmax(q k^T / sqrt(D)) v per head. q [Lq, Hq, D], k/v [Lk, Hkv, D] with Hq a multiple
  // of Hkv (grouped-query attention: query head h reads key/value head h / (Hq / Hkv));
  // keys at index >= k_valid are masked out (k_valid < 0: all keys). When lse is given it
  // receives the natural-log sum of exponentials of the scaled scores, fp32 [Hq, Lq] on
  // this backend's device (Ring attention merges by it).
  // codes (or null): where the backend may leave the output as fp8 codes [Lq, Hq * D]
  // (backend/fp8_rows.h) instead of the compute dtype, for a caller whose next step is
  // linear_fp8_rows. It does so only where it ran fp8 attention whose output is e4m3 (CUDA
  // with --attention fp8 on Hopper, one graph per call); then it returns an undefined tensor.
  // Otherwise *codes is left empty and the output is returned as always.
  Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t k_valid, Tensor* lse,
                   Fp8Rows* codes = nullptr);
  // The same with a causal mask as well: query i sees keys j <= i (CLIP's and the LLM text
  // encoders' self-attention, so Lq == Lk; padding at the end is masked by k_valid).
  Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t k_valid = -1,
                          Tensor* lse = nullptr);

  // Sequence-parallel helpers.
  // x [a, b, ...] -> [b, a, ...] (packs heads per peer for the Ulysses all-to-all).
  Tensor swap_leading(const Tensor& x);
  // Folds a partial attention result over some keys into an accumulator over others:
  // out [L, H, D] and lse [H, L] (fp32) are updated in place, weighted by exp(lse).
  void merge_attention(Tensor& out, Tensor& lse, const Tensor& part, const Tensor& part_lse);

  // Rows held as fp8 codes (backend/fp8_rows.h: what attention leaves in *codes).
  // Their values in the compute dtype: codes * scale + offset.
  Tensor dequantise(const Fp8Rows& x);
  // linear(dequantise(x), w, b) without the dequantised copy where the backend can: with
  // fp8 weights a GPU runs the fp8 product on the codes themselves (x's scale as the input's
  // scale) with b + W offset as the bias (a product of its own, on the device). x [M, K],
  // w [N, K], b [N] or undefined.
  Tensor linear_fp8_rows(const Fp8Rows& x, const Tensor& w, const Tensor& b);

 protected:
  virtual void write_bytes_impl(const void* src, Tensor& dst, size_t dst_offset, size_t n);
  virtual std::unique_ptr<Pending> start_upload_impl(const Tensor& host, Tensor& dst, size_t dst_offset);
  virtual Tensor copy_impl(const Tensor& x) = 0;
  virtual Tensor concat_rows_impl(const Tensor& a, const Tensor& b) = 0;
  virtual Tensor concat_columns_impl(const Tensor& a, const Tensor& b) = 0;
  virtual Tensor to_f32_impl(const Tensor& x);
  virtual Tensor upload_f32_impl(const Tensor& host);
  // x_absmax: checked (undefined, or fp32 [1] on the device); the caller owes its value.
  virtual Tensor linear_impl(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& x_absmax) = 0;
  virtual Tensor linear_gelu_tanh_impl(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& x_absmax) = 0;
  virtual Tensor linear_pair_impl(const Tensor& a, const Tensor& b, const Tensor& w, const Tensor& bias) = 0;
  // Default: each term through linear_impl / linear_gelu_tanh_impl (the CPU reference).
  // Terms with no rows or no outputs never reach it.
  virtual std::vector<Tensor> linears_impl(const Tensor& x, const std::vector<LinearTerm>& terms,
                                           const Tensor& x_absmax);
  virtual Tensor layer_norm_impl(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) = 0;
  virtual Tensor rms_norm_impl(const Tensor& x, const Tensor& weight, float eps) = 0;
  virtual void add_gated_impl(Tensor& x, const Tensor& y, const Tensor& gate) = 0;
  virtual Tensor add_impl(const Tensor& a, const Tensor& b) = 0;
  virtual Tensor gelu_tanh_impl(const Tensor& x) = 0;
  virtual Tensor gelu_erf_impl(const Tensor& x) = 0;
  virtual Tensor silu_impl(const Tensor& x) = 0;
  virtual Tensor quick_gelu_impl(const Tensor& x) = 0;
  virtual Tensor swiglu_impl(const Tensor& gate, const Tensor& up) = 0;
  // table [n, D/2, 2] for tokens [first_token, first_token + n), n >= 1.
  virtual void apply_rope_impl(Tensor& x, const Tensor& table, RopePairs pairs, int64_t first_token) = 0;
  // Lq >= 1; lse (or null) receives fp32 [Hq, Lq] on the device.
  // codes (or null): as attention() says; *codes arrives empty.
  virtual Tensor attention_impl(const Tensor& q, const Tensor& k, const Tensor& v, AttentionMask mask,
                                Tensor* lse, Fp8Rows* codes) = 0;
  virtual Tensor swap_leading_impl(const Tensor& x) = 0;
  virtual void merge_attention_impl(Tensor& out, Tensor& lse, const Tensor& part, const Tensor& part_lse) = 0;
  // x with at least one row and column, w with at least one output.
  virtual Tensor dequantise_impl(const Fp8Rows& x) = 0;
  // Default (the CPU reference): linear_impl of dequantise_impl.
  virtual Tensor linear_fp8_rows_impl(const Fp8Rows& x, const Tensor& w, const Tensor& b);

 private:
  Tensor checked_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t k_valid, bool causal,
                           Tensor* lse, Fp8Rows* codes = nullptr);
};

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace raylight
