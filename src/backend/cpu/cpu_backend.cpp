// CpuBackend: the Backend interface over the reference kernels in cpu_kernels.h. Operands
// arrive checked (backend.cpp, ops/*.cpp); each *_impl is one call into a kernel.
#include "backend/cpu/cpu_kernels.h"
#include "backend/fp8_attention.h"
#include "core/error.h"

namespace raylight {
namespace {

class CpuBackend final : public Backend, public Fp8AttentionOps {
 public:
  Tensor attention_fp8_impl(const Tensor& q, const Tensor& k, const Tensor& v, int64_t k_valid, Tensor* lse,
                            int64_t kv_chunk) override {
    return cpu::attention_fp8(q, k, v, k_valid, lse, kv_chunk);
  }
  std::string name() const override { return "cpu"; }
  Device device() const override { return Device::CPU; }
  DType compute_dtype() const override { return DType::F32; }
  Tensor upload(const Tensor& host) override {
    if (host.device() != Device::CPU) fail("upload: the CPU backend takes host tensors");
    return host.dtype() == DType::F32 ? host.clone() : host.to_f32();
  }
  Tensor download(const Tensor& t) override { return t.clone(); }
  Tensor weight(const Tensor& stored, float scale) override { return cpu::dequantize(stored, scale); }
  bool keeps_weights() const override { return false; }
  Tensor empty(const Shape& shape) override { return Tensor::empty(shape); }

 protected:
  Tensor copy_impl(const Tensor& x) override { return x.clone(); }
  Tensor concat_rows_impl(const Tensor& a, const Tensor& b) override { return cpu::concat_rows(a, b); }
  Tensor concat_columns_impl(const Tensor& a, const Tensor& b) override { return cpu::concat_columns(a, b); }
  // Products are fp32 here: an input's absmax has nothing to save.
  Tensor linear_impl(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& /*x_absmax*/) override {
    return cpu::linear(x, w, b);
  }
  Tensor linear_gelu_tanh_impl(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& /*x_absmax*/) override {
    return cpu::gelu_tanh(cpu::linear(x, w, b));
  }
  Tensor linear_pair_impl(const Tensor& a, const Tensor& b, const Tensor& w, const Tensor& bias) override {
    return cpu::linear(cpu::concat_columns(a, b), w, bias);
  }
  Tensor layer_norm_impl(const Tensor& x, const Tensor& w, const Tensor& b, float eps) override {
    return cpu::layer_norm(x, w, b, eps);
  }
  Tensor rms_norm_impl(const Tensor& x, const Tensor& w, float eps) override { return cpu::rms_norm(x, w, eps); }
  void add_gated_impl(Tensor& x, const Tensor& y, const Tensor& gate) override { cpu::add_gated(x, y, gate); }
  Tensor add_impl(const Tensor& a, const Tensor& b) override { return cpu::add(a, b); }
  Tensor gelu_tanh_impl(const Tensor& x) override { return cpu::gelu_tanh(x); }
  Tensor gelu_erf_impl(const Tensor& x) override { return cpu::gelu_erf(x); }
  Tensor silu_impl(const Tensor& x) override { return cpu::silu(x); }
  Tensor quick_gelu_impl(const Tensor& x) override { return cpu::quick_gelu(x); }
  Tensor swiglu_impl(const Tensor& gate, const Tensor& up) override { return cpu::swiglu(gate, up); }
  void apply_rope_impl(Tensor& x, const Tensor& table, RopePairs pairs, int64_t first_token) override {
    cpu::apply_rope(x, table, pairs, first_token);
  }
  // The CPU never runs fp8 attention here (attention_fp8 is its own op): codes stay empty.
  Tensor attention_impl(const Tensor& q, const Tensor& k, const Tensor& v, AttentionMask mask, Tensor* lse,
                        Fp8Rows* /*codes*/) override {
    return cpu::attention(q, k, v, mask, lse);
  }
  Tensor swap_leading_impl(const Tensor& x) override { return cpu::swap_leading(x); }
  void merge_attention_impl(Tensor& out, Tensor& lse, const Tensor& part, const Tensor& part_lse) override {
    cpu::merge_attention(out, lse, part, part_lse);
  }
  Tensor dequantise_impl(const Fp8Rows& x) override { return cpu::dequantise(x); }

  // DitOps
  Tensor modulate_impl(const Tensor& x, const Tensor& shift, const Tensor& scale) override {
    return cpu::modulate(x, shift, scale);
  }
  // Activations are fp32 here, so f32_out changes nothing; the absmax is the fp32 result's.
  Tensor layer_norm_modulate_impl(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                                  bool /*f32_out*/, Tensor* absmax) override {
    Tensor out = cpu::modulate(cpu::layer_norm(x, {}, {}, eps), shift, scale);
    if (absmax) *absmax = cpu::absmax(out);
    return out;
  }
  // The ops it fuses, in order (bit for bit their results): the updates into x (or into a
  // copy of x, where the sum is not stored), then the norm.
  Tensor gated_sum_layer_norm_impl(const Tensor& x, const std::vector<GatedUpdate>& updates, Tensor* sum,
                                   const Tensor& w, const Tensor& b, const Tensor& shift, const Tensor& scale, float eps,
                                   Tensor* absmax) override {
    Tensor s = sum ? *sum : x.clone();
    for (const GatedUpdate& u : updates) cpu::add_gated(s, u.y, u.gate);
    const Tensor n = cpu::layer_norm(s, w, b, eps);
    Tensor out = shift.defined() ? cpu::modulate(n, shift, scale) : n;
    if (absmax) *absmax = cpu::absmax(out);
    return out;
  }
  Tensor patchify_impl(const Tensor& x, PatchSize p) override { return cpu::patchify(x, p); }
  void qkv_norm_rope_impl(const Tensor& qkv, const Tensor& qw, const Tensor& kw, QkNormSpan span, float eps,
                          const Tensor& table, Tensor& q, Tensor& k, Tensor& v, int64_t row0) override {
    cpu::qkv_norm_rope(qkv, qw, kw, span, eps, table, q, k, v, row0);
  }
  Tensor norm_rope_impl(const Tensor& x, const Tensor& w, QkNormSpan span, float eps, const Tensor& table,
                        int64_t heads) override {
    return cpu::norm_rope(x, w, span, eps, table, heads);
  }
  Tensor unpatchify_impl(const Tensor& t, int64_t gf, int64_t gh, int64_t gw, int64_t c, PatchSize p) override {
    return cpu::unpatchify(t, gf, gh, gw, c, p);
  }

  // T5Ops
  Tensor attention_offset_bias_impl(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias,
                                    float scale) override {
    return cpu::attention_offset_bias(q, k, v, bias, scale);
  }

  // VaeOps
  Tensor conv3d_impl(const Tensor& x, const Tensor& past, const Tensor& w, const Tensor& b,
                     const Conv3dSpec& spec) override {
    return cpu::conv3d(x, past, w, b, spec);
  }
  Tensor channel_rms_norm_impl(const Tensor& x, const Tensor& gamma, bool silu) override {
    return cpu::channel_rms_norm(x, gamma, silu);
  }
  Tensor group_norm_impl(const Tensor& x, const Tensor& w, const Tensor& b, const GroupNormSpec& spec) override {
    return cpu::group_norm(x, w, b, spec);
  }
  Tensor upsample_nearest2x_impl(const Tensor& x) override { return cpu::upsample_nearest2x(x); }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace raylight
