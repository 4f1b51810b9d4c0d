// CpuBackend: the Backend interface over the reference kernels in cpu_kernels.h.
#include "backend/cpu/cpu_kernels.h"
#include "core/error.h"

namespace raylight {
namespace {

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  Device device() const override { return Device::CPU; }
  Tensor upload(const Tensor& host) override {
    return host.dtype() == DType::F32 ? host.clone() : host.to_f32();
  }
  Tensor download(const Tensor& t) override { return t.clone(); }
  Tensor weight(const Tensor& stored, float scale) override { return cpu::dequantize(stored, scale); }
  bool keeps_weights() const override { return false; }
  Tensor copy(const Tensor& x) override { return x.clone(); }
  Tensor empty(const Shape& shape) override { return Tensor::empty(shape); }
  Tensor swap_leading(const Tensor& x) override { return cpu::swap_leading(x); }
  void merge_attention(Tensor& out, Tensor& lse, const Tensor& part, const Tensor& part_lse) override {
    cpu::merge_attention(out, lse, part, part_lse);
  }
  Tensor concat_rows(const Tensor& a, const Tensor& b) override { return cpu::concat_rows(a, b); }
  Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) override {
    return cpu::linear(x, w, b);
  }
  Tensor layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps) override {
    return cpu::layer_norm(x, w, b, eps);
  }
  Tensor rms_norm(const Tensor& x, const Tensor& w, float eps) override {
    return cpu::rms_norm(x, w, eps);
  }
  Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale) override {
    return cpu::modulate(x, shift, scale);
  }
  void add_gated(Tensor& x, const Tensor& y, const Tensor& gate) override {
    cpu::add_gated(x, y, gate);
  }
  Tensor gelu_tanh(const Tensor& x) override { return cpu::gelu_tanh(x); }
  Tensor gelu_erf(const Tensor& x) override { return cpu::gelu_erf(x); }
  Tensor silu(const Tensor& x) override { return cpu::silu(x); }
  Tensor add(const Tensor& a, const Tensor& b) override { return cpu::add(a, b); }
  void apply_rope(Tensor& x, const Tensor& table) override { cpu::apply_rope(x, table); }
  Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t k_valid,
                   Tensor* lse) override {
    return cpu::attention(q, k, v, k_valid, lse);
  }
  Tensor patchify(const Tensor& x, PatchSize p) override { return cpu::patchify(x, p); }
  Tensor unpatchify(const Tensor& t, int64_t gf, int64_t gh, int64_t gw, int64_t c,
                    PatchSize p) override {
    return cpu::unpatchify(t, gf, gh, gw, c, p);
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace raylight
