// Default implementations of the fused Backend ops, composed from the basic ops, so the
// CPU reference (and any new backend) gets them for free and computes exactly what the
// unfused sequence computes.
#include "backend/backend.h"

#include <cstring>

#include "backend/cpu/cpu_kernels.h"
#include "core/error.h"

namespace raylight {

Tensor Backend::layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale,
                                    float eps) {
  return modulate(layer_norm(x, {}, {}, eps), shift, scale);
}

Tensor Backend::linear_gelu_tanh(const Tensor& x, const Tensor& w, const Tensor& b) {
  return gelu_tanh(linear(x, w, b));
}

// Sequence-parallel helpers and allocation: a host round trip through the CPU kernels, so a
// new backend is correct before it is fast.
void Backend::set_memory_limit(size_t) {
  fail("--gpu-memory-limit applies to GPU backends; backend ", name(), " has no device memory");
}

Tensor Backend::empty(const Shape& shape) { return upload(Tensor::zeros(shape)); }

Tensor Backend::device_bytes(size_t n) { return Tensor::empty({static_cast<int64_t>(n)}, DType::U8); }

Tensor Backend::host_bytes(size_t n) { return Tensor::empty({static_cast<int64_t>(n)}, DType::U8); }

void Backend::write_bytes(const void* src, Tensor& dst, size_t dst_offset, size_t n) {
  if (dst_offset + n > dst.nbytes())
    fail("write_bytes: ", n, " bytes at ", dst_offset, " overrun a buffer of ", dst.nbytes());
  if (n) std::memcpy(static_cast<uint8_t*>(dst.raw()) + dst_offset, src, n);
}

std::unique_ptr<Pending> Backend::start_upload(const Tensor& host, Tensor& dst, size_t dst_offset) {
  write_bytes(host.raw(), dst, dst_offset, host.nbytes());
  return std::make_unique<DonePending>();
}

Tensor Backend::attention_offset_bias(const Tensor& q, const Tensor& k, const Tensor& v,
                                      const Tensor& bias_by_offset, float scale) {
  return upload(cpu::attention_offset_bias(download(q), download(k), download(v), bias_by_offset, scale));
}

Tensor Backend::concat_columns(const Tensor& a, const Tensor& b) {
  return upload(cpu::concat_columns(download(a), download(b)));
}

Tensor Backend::swap_leading(const Tensor& x) {
  return upload(cpu::swap_leading(download(x)));
}

void Backend::merge_attention(Tensor& out, Tensor& lse, const Tensor& part, const Tensor& part_lse) {
  Tensor o = download(out), l = download(lse);
  cpu::merge_attention(o, l, download(part), download(part_lse));
  out = upload(o);
  lse = upload(l);
}

}  // namespace raylight
