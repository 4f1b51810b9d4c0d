// The public ops of backend.h: each checks its operands once for every backend (through
// ops/op_checks.h), returns at once when the result is empty, then calls the backend's
// *_impl. Also the memory defaults for backends whose memory is host memory.
#include "backend/backend.h"

#include <algorithm>
#include <cstring>

#include "backend/ops/op_checks.h"
#include "core/error.h"

namespace raylight {

// --- Memory ---------------------------------------------------------------------------
void Backend::set_memory_limit(size_t) {
  fail("--gpu-memory-limit applies to GPU backends; backend ", name(), " has no device memory");
}

Tensor Backend::empty(const Shape& shape) { return upload(Tensor::zeros(shape)); }

Tensor Backend::empty_f32(const Shape& shape) {
  if (device() != Device::CPU) fail("backend ", name(), " does not make fp32 device tensors");
  return Tensor::empty(shape);
}

Tensor Backend::device_bytes(size_t n) { return Tensor::empty({static_cast<int64_t>(n)}, DType::U8); }

Tensor Backend::host_bytes(size_t n) { return Tensor::empty({static_cast<int64_t>(n)}, DType::U8); }

void Backend::write_bytes(const void* src, Tensor& dst, size_t dst_offset, size_t n) {
  if (!dst.defined() || dst.device() != device() || !dst.is_contiguous())
    fail("write_bytes: the destination is not a contiguous buffer of backend ", name());
  if (dst_offset > dst.nbytes() || n > dst.nbytes() - dst_offset)
    fail("write_bytes: ", n, " bytes at ", dst_offset, " overrun a buffer of ", dst.nbytes());
  if (n) write_bytes_impl(src, dst, dst_offset, n);
}

std::unique_ptr<Pending> Backend::start_upload(const Tensor& host, Tensor& dst, size_t dst_offset) {
  if (!host.defined() || host.device() != Device::CPU || !host.is_contiguous())
    fail("start_upload: the source is not a contiguous buffer in host memory");
  if (!dst.defined() || dst.device() != device() || !dst.is_contiguous())
    fail("start_upload: the destination is not a contiguous buffer of backend ", name());
  if (dst_offset > dst.nbytes() || host.nbytes() > dst.nbytes() - dst_offset)
    fail("start_upload: ", host.nbytes(), " bytes at ", dst_offset, " overrun a buffer of ", dst.nbytes());
  if (host.nbytes() == 0) return std::make_unique<DonePending>();
  return start_upload_impl(host, dst, dst_offset);
}

void Backend::write_bytes_impl(const void* src, Tensor& dst, size_t dst_offset, size_t n) {
  std::memcpy(static_cast<uint8_t*>(dst.raw()) + dst_offset, src, n);
}

std::unique_ptr<Pending> Backend::start_upload_impl(const Tensor& host, Tensor& dst, size_t dst_offset) {
  write_bytes_impl(host.raw(), dst, dst_offset, host.nbytes());
  return std::make_unique<DonePending>();
}

// --- Ops ------------------------------------------------------------------------------
Tensor Backend::copy(const Tensor& x) {
  if (!x.defined() || x.device() != device() || !x.is_contiguous())
    fail("copy: expected a contiguous tensor of backend ", name(), ", got ", shape_str(x.shape()));
  return copy_impl(x);
}

Tensor Backend::concat_rows(const Tensor& a, const Tensor& b) {
  checks::activation(*this, a, "concat_rows", "top");
  checks::activation(*this, b, "concat_rows", "bottom");
  if (a.ndim() != 2 || b.ndim() != 2 || a.dim(1) != b.dim(1))
    fail("concat_rows: ", shape_str(a.shape()), " and ", shape_str(b.shape()), " do not stack");
  if (a.numel() + b.numel() == 0) return empty({a.dim(0) + b.dim(0), a.dim(1)});
  return concat_rows_impl(a, b);
}

Tensor Backend::concat_columns(const Tensor& a, const Tensor& b) {
  checks::activation(*this, a, "concat_columns", "left");
  checks::activation(*this, b, "concat_columns", "right");
  if (a.ndim() != 2 || b.ndim() != 2 || a.dim(0) != b.dim(0))
    fail("concat_columns: ", shape_str(a.shape()), " and ", shape_str(b.shape()), " do not stand side by side");
  if (a.numel() + b.numel() == 0) return empty({a.dim(0), a.dim(1) + b.dim(1)});
  return concat_columns_impl(a, b);
}

namespace {

void check_linear(const Backend& be, const Tensor& x, const Tensor& w, const Tensor& b, const char* op,
                  bool precise_input = false) {
  if (precise_input) checks::precise_activation(be, x, op, "input");
  else checks::activation(be, x, op, "input");
  checks::weight(be, w, op);
  if (x.ndim() != 2 || w.ndim() != 2 || x.dim(1) != w.dim(1))
    fail(op, ": input ", shape_str(x.shape()), " does not match weight ", shape_str(w.shape()));
  if (x.dim(1) == 0) fail(op, ": input ", shape_str(x.shape()), " has no features");
  if (b.defined() && b.ndim() != 1)
    fail(op, ": bias ", shape_str(b.shape()), " does not match weight ", shape_str(w.shape()));
  checks::vector(be, b, w.dim(0), op, "bias");
}

}  // namespace

Tensor Backend::linear(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& x_absmax) {
  check_linear(*this, x, w, b, "linear", true);
  checks::input_absmax(*this, x_absmax, "linear");
  if (x.dim(0) == 0 || w.dim(0) == 0)
    return x.dtype() == compute_dtype() ? empty({x.dim(0), w.dim(0)}) : empty_f32({x.dim(0), w.dim(0)});
  return linear_impl(x, w, b, x_absmax);
}

Tensor Backend::linear_gelu_tanh(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& x_absmax) {
  check_linear(*this, x, w, b, "linear_gelu_tanh");
  checks::input_absmax(*this, x_absmax, "linear_gelu_tanh");
  if (x.dim(0) == 0 || w.dim(0) == 0) return empty({x.dim(0), w.dim(0)});
  return linear_gelu_tanh_impl(x, w, b, x_absmax);
}

Tensor Backend::linear_pair(const Tensor& a, const Tensor& b, const Tensor& w, const Tensor& bias) {
  const char* op = "linear_pair";
  checks::activation(*this, a, 2, "[M, Ka]", op, "left input");
  checks::activation(*this, b, 2, "[M, Kb]", op, "right input");
  checks::weight(*this, w, op);
  if (a.dim(0) != b.dim(0) || a.dim(1) == 0 || b.dim(1) == 0)
    fail(op, ": inputs ", shape_str(a.shape()), " and ", shape_str(b.shape()), " do not stand side by side");
  if (w.ndim() != 2 || w.dim(1) != a.dim(1) + b.dim(1))
    fail(op, ": inputs ", shape_str(a.shape()), " and ", shape_str(b.shape()), " do not match weight ",
         shape_str(w.shape()));
  if (bias.defined() && bias.ndim() != 1)
    fail(op, ": bias ", shape_str(bias.shape()), " does not match weight ", shape_str(w.shape()));
  checks::vector(*this, bias, w.dim(0), op, "bias");
  if (a.dim(0) == 0 || w.dim(0) == 0) return empty({a.dim(0), w.dim(0)});
  return linear_pair_impl(a, b, w, bias);
}

std::vector<Tensor> Backend::linears(const Tensor& x, const std::vector<LinearTerm>& terms, const Tensor& x_absmax) {
  if (terms.empty()) fail("linears: no weights given");
  for (const LinearTerm& t : terms) check_linear(*this, x, t.w, t.b, "linears");
  checks::input_absmax(*this, x_absmax, "linears");
  // Terms with no outputs (or an input with no rows) are answered here; the rest go to the
  // backend together, in order.
  std::vector<Tensor> out(terms.size());
  std::vector<LinearTerm> work;
  std::vector<size_t> where;
  for (size_t i = 0; i < terms.size(); ++i) {
    if (x.dim(0) == 0 || terms[i].w.dim(0) == 0) out[i] = empty({x.dim(0), terms[i].w.dim(0)});
    else work.push_back(terms[i]), where.push_back(i);
  }
  if (work.empty()) return out;
  std::vector<Tensor> got = linears_impl(x, work, x_absmax);
  if (got.size() != work.size()) fail("linears: backend ", name(), " returned ", got.size(), " of ", work.size(), " products");
  for (size_t j = 0; j < work.size(); ++j) out[where[j]] = std::move(got[j]);
  return out;
}

std::vector<Tensor> Backend::linears_impl(const Tensor& x, const std::vector<LinearTerm>& terms,
                                          const Tensor& x_absmax) {
  std::vector<Tensor> out;
  out.reserve(terms.size());
  for (const LinearTerm& t : terms)
    out.push_back(t.gelu_tanh ? linear_gelu_tanh_impl(x, t.w, t.b, x_absmax) : linear_impl(x, t.w, t.b, x_absmax));
  return out;
}

namespace {

// Rows of x [.., D] with D >= 1 (compute dtype or fp32); returns D.
int64_t check_rows(const Backend& be, const Tensor& x, const char* op) {
  checks::precise_activation(be, x, op, "input");
  if (x.ndim() < 1 || x.dim(-1) < 1) fail(op, ": input ", shape_str(x.shape()), " has no features");
  return x.dim(-1);
}

}  // namespace

Tensor Backend::layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  const int64_t D = check_rows(*this, x, "layer_norm");
  checks::vector(*this, weight, D, "layer_norm", "weight");
  checks::vector(*this, bias, D, "layer_norm", "bias");
  if (x.numel() == 0) return empty(x.shape());
  return layer_norm_impl(x, weight, bias, eps);
}

Tensor Backend::rms_norm(const Tensor& x, const Tensor& weight, float eps) {
  const int64_t D = check_rows(*this, x, "rms_norm");
  checks::vector(*this, weight, D, "rms_norm", "weight");
  if (x.numel() == 0) return empty(x.shape());
  return rms_norm_impl(x, weight, eps);
}

void Backend::add_gated(Tensor& x, const Tensor& y, const Tensor& gate) {
  const int64_t D = check_rows(*this, x, "add_gated");
  checks::precise_activation(*this, y, "add_gated", "addend");
  if (x.shape() != y.shape())
    fail("add_gated: shapes ", shape_str(x.shape()), " and ", shape_str(y.shape()), " differ");
  checks::precise_vector(*this, gate, D, "add_gated", "gate");
  if (x.numel() == 0) return;
  add_gated_impl(x, y, gate);
}

namespace {

void check_same(const Backend& be, const Tensor& a, const Tensor& b, const char* op) {
  checks::activation(be, a, op, "first operand");
  checks::activation(be, b, op, "second operand");
  if (a.shape() != b.shape()) fail(op, ": shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()), " differ");
}

}  // namespace

Tensor Backend::add(const Tensor& a, const Tensor& b) {
  checks::precise_activation(*this, a, "add", "first operand");
  checks::precise_activation(*this, b, "add", "second operand");
  if (a.shape() != b.shape()) fail("add: shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()), " differ");
  const bool f32 = a.dtype() == DType::F32 || b.dtype() == DType::F32;
  if (a.numel() == 0) return f32 ? empty_f32(a.shape()) : empty(a.shape());
  return add_impl(a, b);
}

Tensor Backend::to_f32(const Tensor& x) {
  checks::precise_activation(*this, x, "to_f32", "input");
  if (x.dtype() == DType::F32) return x;
  if (x.numel() == 0) return empty_f32(x.shape());
  return to_f32_impl(x);
}

Tensor Backend::upload_f32(const Tensor& host) {
  if (!host.defined() || host.device() != Device::CPU || !host.is_contiguous())
    fail("upload_f32: expected a contiguous host tensor, got ", shape_str(host.shape()));
  return upload_f32_impl(host.to_f32());
}

Tensor Backend::to_f32_impl(const Tensor& x) {
  fail("to_f32: backend ", name(), " keeps activations in ", dtype_name(compute_dtype()), " and cannot widen ",
       dtype_name(x.dtype()));
}

Tensor Backend::upload_f32_impl(const Tensor& host) {
  if (compute_dtype() != DType::F32) fail("upload_f32: backend ", name(), " has no fp32 upload");
  return upload(host);
}

Tensor Backend::swiglu(const Tensor& gate, const Tensor& up) {
  check_same(*this, gate, up, "swiglu");
  if (gate.numel() == 0) return empty(gate.shape());
  return swiglu_impl(gate, up);
}

Tensor Backend::gelu_tanh(const Tensor& x) {
  checks::activation(*this, x, "gelu_tanh", "input");
  return x.numel() == 0 ? empty(x.shape()) : gelu_tanh_impl(x);
}

Tensor Backend::gelu_erf(const Tensor& x) {
  checks::activation(*this, x, "gelu_erf", "input");
  return x.numel() == 0 ? empty(x.shape()) : gelu_erf_impl(x);
}

Tensor Backend::silu(const Tensor& x) {
  checks::precise_activation(*this, x, "silu", "input");
  if (x.numel() == 0) return x.dtype() == compute_dtype() ? empty(x.shape()) : empty_f32(x.shape());
  return silu_impl(x);
}

Tensor Backend::quick_gelu(const Tensor& x) {
  checks::activation(*this, x, "quick_gelu", "input");
  return x.numel() == 0 ? empty(x.shape()) : quick_gelu_impl(x);
}

void Backend::apply_rope(Tensor& x, const Tensor& table, RopePairs pairs, int64_t first_token) {
  checks::activation(*this, x, 3, "[L, heads, head_dim]", "apply_rope", "input");
  if (!table.defined() || !table.is_contiguous()) fail("apply_rope: the table is missing or not contiguous");
  const bool host_f32 = table.device() == Device::CPU && table.dtype() == DType::F32;
  const bool ours = table.device() == device() && (table.dtype() == DType::F32 || table.dtype() == compute_dtype());
  if (!host_f32 && !ours)
    fail("apply_rope: the table is ", dtype_name(table.dtype()), " in ", table.device() == Device::CPU ? "host" : "GPU",
         " memory; expected host fp32 or a tensor of backend ", name());
  if (x.dim(2) % 2 != 0) fail("apply_rope: head_dim ", x.dim(2), " is odd");
  if (table.ndim() != 3 || table.dim(1) * 2 != x.dim(2) || table.dim(2) != 2)
    fail("apply_rope: x ", shape_str(x.shape()), " does not fit table ", shape_str(table.shape()));
  if (first_token < 0 || first_token > x.dim(0) || table.dim(0) > x.dim(0) - first_token)
    fail("apply_rope: a table of ", table.dim(0), " tokens from token ", first_token, " does not fit x ",
         shape_str(x.shape()));
  if (table.dim(0) == 0 || x.numel() == 0) return;
  apply_rope_impl(x, table, pairs, first_token);
}

Tensor Backend::checked_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t k_valid, bool causal,
                                  Tensor* lse, Fp8Rows* codes) {
  const char* op = causal ? "causal_attention" : "attention";
  if (codes) *codes = Fp8Rows{};
  checks::activation(*this, q, op, "q");
  checks::activation(*this, k, op, "k");
  checks::activation(*this, v, op, "v");
  if (q.ndim() != 3 || k.ndim() != 3 || k.shape() != v.shape() || q.dim(2) != k.dim(2) || q.dim(2) < 1 ||
      k.dim(1) < 1 || q.dim(1) % k.dim(1) != 0)
    fail(op, ": q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()),
         " do not fit [L, heads, head_dim] (query heads a multiple of key/value heads)");
  const int64_t Lq = q.dim(0), Lk = k.dim(0), H = q.dim(1);
  if (causal && Lq != Lk) fail(op, ": ", Lq, " queries and ", Lk, " keys; a causal mask needs as many of each");
  if (Lq == 0) {
    if (lse) *lse = empty_f32({H, 0});
    return empty(q.shape());
  }
  const int64_t valid = k_valid < 0 ? Lk : std::min(k_valid, Lk);
  if (valid == 0) fail(op, ": every key is masked");
  return attention_impl(q, k, v, AttentionMask{valid, causal}, lse, codes);
}

Tensor Backend::attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t k_valid, Tensor* lse,
                          Fp8Rows* codes) {
  return checked_attention(q, k, v, k_valid, false, lse, codes);
}

Tensor Backend::causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t k_valid, Tensor* lse) {
  return checked_attention(q, k, v, k_valid, true, lse);
}


Tensor Backend::swap_leading(const Tensor& x) {
  checks::activation(*this, x, "swap_leading", "input");
  if (x.ndim() < 2) fail("swap_leading needs at least 2 dims, got ", shape_str(x.shape()));
  Shape shape = x.shape();
  std::swap(shape[0], shape[1]);
  if (x.numel() == 0) return empty(shape);
  return swap_leading_impl(x);
}

void Backend::merge_attention(Tensor& out, Tensor& lse, const Tensor& part, const Tensor& part_lse) {
  checks::activation(*this, out, "merge_attention", "out");
  checks::activation(*this, part, "merge_attention", "part");
  checks::f32_on_device(*this, lse, "merge_attention", "lse");
  checks::f32_on_device(*this, part_lse, "merge_attention", "part_lse");
  if (out.shape() != part.shape() || lse.shape() != part_lse.shape() || out.ndim() != 3 || lse.ndim() != 2 ||
      lse.dim(0) != out.dim(1) || lse.dim(1) != out.dim(0))
    fail("merge_attention: out ", shape_str(out.shape()), " lse ", shape_str(lse.shape()), " part ",
         shape_str(part.shape()), " part_lse ", shape_str(part_lse.shape()));
  if (out.numel() == 0) return;
  merge_attention_impl(out, lse, part, part_lse);
}

}  // namespace raylight
