// The suite's runner and helpers (see op_suite.h).
#include "op_suite.h"

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <limits>
#include <sstream>

#include "core/dtype.h"
#include "core/error.h"
#include "sampling/noise.h"

namespace raylight::suite {

namespace {

Tensor round_bf16(Tensor t) {
  float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = bf16_to_f32(f32_to_bf16(p[i]));
  return t;
}

}  // namespace

Tensor Inputs::randn(const Shape& shape, float scale, float offset) {
  Tensor t = gaussian_noise(shape, seed_ * 7919 + ++count_);
  float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = p[i] * scale + offset;
  return round_bf16(t);
}

Tensor Inputs::uniform(const Shape& shape, float lo, float hi) {
  Tensor t = Tensor::empty(shape);
  uint64_t z = seed_ * 104729 + ++count_ * 0x9E3779B97F4A7C15ull;
  float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) {
    z += 0x9E3779B97F4A7C15ull;
    uint64_t r = z;
    r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9ull;
    r = (r ^ (r >> 27)) * 0x94D049BB133111EBull;
    r ^= r >> 31;
    p[i] = lo + (hi - lo) * static_cast<float>((r >> 40) * (1.0 / 16777216.0));
  }
  return round_bf16(t);
}

Tensor upload_f32(Backend& be, const Tensor& host) {
  Tensor t = be.empty_f32(host.shape());
  be.write_bytes(host.raw(), t, 0, host.nbytes());
  return t;
}

Tensor absmax_check(const Tensor& out, const Tensor& absmax) {
  float m = 0.0f;
  for (int64_t i = 0; i < out.numel(); ++i) m = std::fmax(m, std::fabs(out.f32()[i]));
  Tensor r = Tensor::zeros({1});
  const bool ok = absmax.numel() == 1 && absmax.f32()[0] == m;
  r.f32()[0] = ok ? 0.0f : std::numeric_limits<float>::quiet_NaN();
  return r;
}

Tensors down(Backend& be, std::initializer_list<Tensor> outs) {
  Tensors r;
  for (const Tensor& t : outs) r.push_back(be.download(t));
  return r;
}

std::string fmt(const char* f, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

double rel_l2(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  const float *pa = a.f32(), *pb = b.f32();
  for (int64_t i = 0; i < a.numel(); ++i) {
    if (!std::isfinite(pa[i])) return 1e9;
    num += (double(pa[i]) - pb[i]) * (double(pa[i]) - pb[i]);
    den += double(pb[i]) * pb[i];
  }
  return num == 0 ? 0.0 : std::sqrt(num / std::max(den, 1e-30));
}

CaseResult run_case(const OpCase& c, Backend& target, Backend& reference, uint64_t seed) {
  CaseResult r;
  Inputs in(seed);
  const Tensors host = c.inputs ? c.inputs(in) : Tensors{};
  if (c.refused) {
    try {
      c.run(target, host);
      r.message = "the op accepted operands it must refuse";
    } catch (const Error& e) {
      r.ok = true;
      r.message = e.what();
    }
    return r;
  }
  const Tensors want = c.run(reference, host);
  const Tensors got = c.run(target, host);
  if (got.size() != want.size()) {
    r.message = fmt("%zu outputs, the reference has %zu", got.size(), want.size());
    return r;
  }
  const bool exact = c.tolerance == 0 || target.compute_dtype() == DType::F32;
  std::ostringstream msg;
  r.ok = true;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i].shape() != want[i].shape()) {
      r.ok = false;
      msg << "output " << i << " has shape " << shape_str(got[i].shape()) << ", reference "
          << shape_str(want[i].shape()) << "; ";
      continue;
    }
    if (rel_l2(want[i], want[i]) != 0) {
      r.ok = false;
      msg << "reference output " << i << " is not finite; ";
      continue;
    }
    const double e = rel_l2(got[i], want[i]);
    r.worst = std::max(r.worst, e);
    msg << "output " << i << " " << shape_str(got[i].shape()) << " rel L2 " << e;
    if (exact ? e != 0 : !(e <= c.tolerance)) {
      r.ok = false;
      msg << (exact ? " (must be bitwise equal)" : " > tolerance ") << (exact ? "" : std::to_string(c.tolerance));
    }
    msg << "; ";
  }
  r.message = msg.str();
  return r;
}

OpCase make(std::string op, std::string shape, double tol, std::function<Tensors(Inputs&)> in,
            std::function<Tensors(Backend&, const Tensors&)> run) {
  OpCase c;
  c.op = std::move(op);
  c.shape = std::move(shape);
  c.tolerance = tol;
  c.inputs = std::move(in);
  c.run = std::move(run);
  return c;
}

OpCase refuse(std::string op, std::string what, std::function<Tensors(Inputs&)> in,
              std::function<void(Backend&, const Tensors&)> run) {
  OpCase c = make(std::move(op), "refuses " + what, 0, std::move(in), [run](Backend& be, const Tensors& t) {
    run(be, t);
    return Tensors{};
  });
  c.refused = true;
  return c;
}

Tensor fp8_codes(const Tensor& w, float scale) {
  Tensor codes = Tensor::empty(w.shape(), DType::F8E4M3);
  for (int64_t i = 0; i < w.numel(); ++i) codes.data<uint8_t>()[i] = f32_to_e4m3(w.f32()[i] / scale);
  return codes;
}

std::vector<OpCase> all_cases() {
  std::vector<OpCase> all;
  for (auto group : {core_cases, attention_cases, family_cases, precise_cases, attention_fp8_cases, fused_cases,
                     norm_absmax_cases, fp8_rows_cases}) {
    std::vector<OpCase> g = group();
    all.insert(all.end(), g.begin(), g.end());
  }
  return all;
}

}  // namespace raylight::suite
