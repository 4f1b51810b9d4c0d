// Suite cases for precise operands (backend.h): the fp32 residual stream, time embedding
// and modulation a DiT keeps at full precision, as its reference code does. Inputs here
// carry bits below bf16 (a factor 1 + 2^-12 applied on the host), so a backend that rounded
// them to bf16 anywhere would miss the tight tolerances: fp32 results of pointwise ops must
// match the CPU to 1e-6, fp32 products (another summation order) to 1e-5, exact moves
// bit for bit. Norms into the compute dtype keep the bf16 tolerance.
#include <cmath>

#include "core/dtype.h"
#include "op_suite.h"

namespace raylight::suite {
namespace {

constexpr double kExact = 0, kF32Pointwise = 1e-6, kF32Product = 1e-5, kPointwise = 5e-3;

// t with bits below bf16's precision (the suite's inputs are bf16-rounded).
Tensor fine(const Tensor& t) {
  Tensor out = t.clone();
  for (int64_t i = 0; i < out.numel(); ++i) out.f32()[i] *= 1.0f + 1.0f / 4096.0f;
  return out;
}

// The fp32 operand on the device.
Tensor f32(Backend& be, const Tensor& host) { return be.upload_f32(fine(host)); }

void moves(std::vector<OpCase>& cs) {
  for (int64_t n : {1, 7, 4096, 0}) {
    auto in = [n](Inputs& r) { return Tensors{r.randn({n, 3})}; };
    const std::string shape = fmt("%lld x 3", (long long)n);
    cs.push_back(make("upload_f32", shape + ", no rounding on the way", kExact, in,
                      [](Backend& be, const Tensors& t) { return down(be, {f32(be, t[0])}); }));
    cs.push_back(make("to_f32", shape + ", from the compute dtype", kExact, in,
                      [](Backend& be, const Tensors& t) { return down(be, {be.to_f32(be.upload(t[0]))}); }));
    cs.push_back(make("to_f32", shape + ", fp32 stays as it is", kExact, in,
                      [](Backend& be, const Tensors& t) { return down(be, {be.to_f32(f32(be, t[0]))}); }));
  }
  // The head's fp32 result through the latent layout.
  cs.push_back(make("unpatchify", "fp32 tokens, grid 2x3x4, 16 channels", kExact,
                    [](Inputs& r) { return Tensors{r.randn({24, 64})}; }, [](Backend& be, const Tensors& t) {
                      return down(be, {be.unpatchify(f32(be, t[0]), 2, 3, 4, 16, PatchSize{1, 2, 2})});
                    }));
}

void pointwise(std::vector<OpCase>& cs) {
  for (int64_t n : {1, 7, 6 * 1536, 100003}) {
    auto in = [n](Inputs& r) { return Tensors{r.randn({n}, 3.0f), r.randn({n})}; };
    const std::string shape = fmt("n=%lld", (long long)n);
    cs.push_back(make("silu", shape + ", fp32", kF32Pointwise, in,
                      [](Backend& be, const Tensors& t) { return down(be, {be.silu(f32(be, t[0]))}); }));
    // A modulation table (compute dtype) plus the fp32 time embedding, either order.
    cs.push_back(make("add", shape + ", compute + fp32", kF32Pointwise, in, [](Backend& be, const Tensors& t) {
      return down(be, {be.add(be.upload(t[0]), f32(be, t[1])), be.add(f32(be, t[1]), be.upload(t[0]))});
    }));
    cs.push_back(make("add", shape + ", fp32 + fp32", kF32Pointwise, in,
                      [](Backend& be, const Tensors& t) { return down(be, {be.add(f32(be, t[0]), f32(be, t[1]))}); }));
  }
}

void rows(std::vector<OpCase>& cs) {
  struct Md { int64_t M, D; };
  for (Md s : {Md{1, 1}, Md{7, 13}, Md{33, 1536}, Md{5, 5120}}) {
    const std::string shape = fmt("%lld x %lld", (long long)s.M, (long long)s.D);
    auto in = [s](Inputs& r) {
      return Tensors{r.randn({s.M, s.D}, 4.0f, 1.0f), r.randn({s.M, s.D}), r.randn({s.D}, 0.5f), r.randn({s.D}, 0.3f)};
    };
    cs.push_back(make("add_gated", shape + ", fp32 x and gate", kF32Pointwise, in, [](Backend& be, const Tensors& t) {
      Tensor x = f32(be, t[0]);
      be.add_gated(x, be.upload(t[1]), f32(be, t[2]));
      return down(be, {x});
    }));
    cs.push_back(make("add_gated", shape + ", fp32 x, plain residual", kF32Pointwise, in,
                      [](Backend& be, const Tensors& t) {
                        Tensor x = f32(be, t[0]);
                        be.add_gated(x, be.upload(t[1]), {});
                        return down(be, {x});
                      }));
    cs.push_back(make("layer_norm_modulate", shape + ", fp32 x and modulation", kPointwise, in,
                      [](Backend& be, const Tensors& t) {
                        return down(be, {be.layer_norm_modulate(f32(be, t[0]), f32(be, t[2]), f32(be, t[3]), 1e-6f)});
                      }));
    cs.push_back(make("layer_norm_modulate", shape + ", fp32 x, compute-dtype modulation", kPointwise, in,
                      [](Backend& be, const Tensors& t) {
                        return down(be, {be.layer_norm_modulate(f32(be, t[0]), be.upload(t[2]), be.upload(t[3]), 1e-6f)});
                      }));
    cs.push_back(make("layer_norm_modulate", shape + ", fp32 throughout", kF32Pointwise * 4, in,
                      [](Backend& be, const Tensors& t) {
                        return down(be, {be.layer_norm_modulate(f32(be, t[0]), f32(be, t[2]), f32(be, t[3]), 1e-6f,
                                                                true)});
                      }));
    cs.push_back(make("layer_norm", shape + ", fp32 x, affine", kPointwise, in, [](Backend& be, const Tensors& t) {
      return down(be, {be.layer_norm(f32(be, t[0]), be.upload(t[2]), be.upload(t[3]), 1e-6f)});
    }));
  }
}

void products(std::vector<OpCase>& cs) {
  struct Mkn { int64_t M, K, N; };
  // The time embedding (one row), a few rows, the head (many rows, 64 outputs: one at Wan
  // 14B's width, rows not a multiple of the CUDA tile), K not a multiple of the tile's k step,
  // odd sizes (K % 4 != 0 takes CUDA's general kernel).
  for (Mkn s : {Mkn{1, 256, 1536}, {1, 1536, 9216}, {3, 1536, 200}, {300, 1536, 64}, {1000, 5120, 64},
                {130, 100, 70}, {7, 13, 5}, {65, 70, 130}}) {
    auto in = [s](Inputs& r) {
      return Tensors{r.randn({s.M, s.K}), r.randn({s.N, s.K}, 1.0f / std::sqrt(float(s.K))), r.randn({s.N}, 0.1f)};
    };
    const std::string shape = fmt("M=%lld K=%lld N=%lld", (long long)s.M, (long long)s.K, (long long)s.N);
    cs.push_back(make("linear", shape + ", fp32 input and result, bias", kF32Product, in,
                      [](Backend& be, const Tensors& t) {
                        return down(be, {be.linear(f32(be, t[0]), be.weight(t[1], 1.0f), be.weight(t[2], 1.0f))});
                      }));
  }
  // fp8 codes: the fp32 product dequantises exactly (code x scale), so only the summation
  // order differs from the CPU.
  // The time embedding's row and the head's rows (an fp8 checkpoint's head).
  for (Mkn s : {Mkn{1, 256, 96}, {1000, 5120, 64}}) {
    auto in8 = [s](Inputs& r) {
      return Tensors{r.randn({s.M, s.K}), r.randn({s.N, s.K}, 0.0625f), r.randn({s.N}, 0.1f)};
    };
    const std::string shape = fmt("M=%lld K=%lld N=%lld", (long long)s.M, (long long)s.K, (long long)s.N);
    cs.push_back(make("linear", shape + ", fp32 input, fp8 weight", kF32Product, in8,
                      [](Backend& be, const Tensors& t) {
                        const float scale = 1.0f / 512.0f;  // a power of two: code x scale is exact in bf16 too
                        return down(be, {be.linear(f32(be, t[0]), be.weight(fp8_codes(t[1], scale), scale),
                                                   be.weight(t[2], 1.0f))});
                      }));
  }
}

}  // namespace

std::vector<OpCase> precise_cases() {
  std::vector<OpCase> cs;
  moves(cs);
  pointwise(cs);
  rows(cs);
  products(cs);
  return cs;
}

}  // namespace raylight::suite
