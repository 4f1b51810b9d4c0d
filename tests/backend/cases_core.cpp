// Suite cases for the shared ops of backend.h: products (q/k/v biases included: they are
// linear's bias), norms, pointwise ops (the text encoders' quick GELU and SwiGLU too),
// copies and the byte interface weight stores use. Shapes cover odd sizes (no vector path), the real
// widths of Wan 1.3B / 14B (1536, 5120, 8960), empty batches, and refused operands.
//
// Tolerances (relative L2 on a bf16 backend): bf16 outputs round at 2^-9 relative (about
// 1.1e-3 RMS), so pointwise ops must land under 5e-3 and reductions (products) under 1e-2;
// fp8 products quantise the activation too (3 mantissa bits) and get 5e-2; copies are exact.
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "op_suite.h"

namespace raylight::suite {
namespace {

constexpr double kPointwise = 5e-3, kReduction = 1e-2, kFp8 = 5e-2;

void products(std::vector<OpCase>& cs) {
  struct Mkn { int64_t M, K, N; };
  for (Mkn s : {Mkn{1, 1, 1}, {7, 13, 5}, {33, 64, 517}, {3, 200, 9}, {257, 512, 384}, {1000, 1536, 1536},
                {0, 16, 8}}) {
    auto in = [s](Inputs& r) {
      return Tensors{r.randn({s.M, s.K}), r.randn({s.N, s.K}, 1.0f / std::sqrt(float(s.K))), r.randn({s.N}, 0.1f)};
    };
    const std::string shape = fmt("M=%lld K=%lld N=%lld", (long long)s.M, (long long)s.K, (long long)s.N);
    cs.push_back(make("linear", shape + ", bias", kReduction, in, [](Backend& be, const Tensors& t) {
      return down(be, {be.linear(be.upload(t[0]), be.weight(t[1], 1.0f), be.weight(t[2], 1.0f))});
    }));
    cs.push_back(make("linear", shape, kReduction, in, [](Backend& be, const Tensors& t) {
      return down(be, {be.linear(be.upload(t[0]), be.weight(t[1], 1.0f), {})});
    }));
    cs.push_back(make("linear_gelu_tanh", shape + ", bias", kReduction, in, [](Backend& be, const Tensors& t) {
      return down(be, {be.linear_gelu_tanh(be.upload(t[0]), be.weight(t[1], 1.0f), be.weight(t[2], 1.0f))});
    }));
  }
  // fp8 weights: a GPU backend keeps the codes and multiplies in fp8 (or dequantises).
  for (Mkn s : {Mkn{16, 64, 32}, {333, 512, 768}, {1024, 1536, 8960}, {5, 48, 16}}) {
    const float scale = 4.5f / std::sqrt(float(s.K)) / 448.0f;
    auto in = [s](Inputs& r) {
      return Tensors{r.randn({s.M, s.K}), r.randn({s.N, s.K}, 1.0f / std::sqrt(float(s.K))), r.randn({s.N}, 0.1f)};
    };
    cs.push_back(make("linear", fmt("M=%lld K=%lld N=%lld, fp8 e4m3 weight", (long long)s.M, (long long)s.K,
                                    (long long)s.N),
                      kFp8, in, [scale](Backend& be, const Tensors& t) {
                        return down(be, {be.linear(be.upload(t[0]), be.weight(fp8_codes(t[1], scale), scale),
                                                   be.weight(t[2], 1.0f))});
                      }));
  }
  cs.push_back(refuse("linear", "K mismatch", [](Inputs& r) { return Tensors{r.randn({2, 3}), r.randn({4, 5})}; },
                      [](Backend& be, const Tensors& t) { be.linear(be.upload(t[0]), be.weight(t[1], 1.0f), {}); }));
  cs.push_back(refuse("linear", "a bias of the wrong size",
                      [](Inputs& r) { return Tensors{r.randn({2, 3}), r.randn({4, 3}), r.randn({5})}; },
                      [](Backend& be, const Tensors& t) {
                        be.linear(be.upload(t[0]), be.weight(t[1], 1.0f), be.weight(t[2], 1.0f));
                      }));
}

void norms(std::vector<OpCase>& cs) {
  struct Md { int64_t M, D; };
  for (Md s : {Md{5, 37}, {3, 1536}, {17, 5120}, {64, 128}, {0, 64}, {1, 1}}) {
    auto in = [s](Inputs& r) {
      return Tensors{r.randn({s.M, s.D}, 2.0f, 0.5f), r.randn({s.D}, 0.1f, 1.0f), r.randn({s.D}, 0.1f)};
    };
    const std::string shape = fmt("M=%lld D=%lld", (long long)s.M, (long long)s.D);
    cs.push_back(make("layer_norm", shape + ", affine", kPointwise, in, [](Backend& be, const Tensors& t) {
      return down(be, {be.layer_norm(be.upload(t[0]), be.upload(t[1]), be.upload(t[2]), 1e-6f)});
    }));
    cs.push_back(make("layer_norm", shape, kPointwise, in, [](Backend& be, const Tensors& t) {
      return down(be, {be.layer_norm(be.upload(t[0]), {}, {}, 1e-6f)});
    }));
    cs.push_back(make("rms_norm", shape, kPointwise, in, [](Backend& be, const Tensors& t) {
      return down(be, {be.rms_norm(be.upload(t[0]), be.upload(t[1]), 1e-6f)});
    }));
    auto in3 = [s](Inputs& r) { return Tensors{r.randn({s.M, s.D}), r.randn({s.M, s.D}), r.randn({s.D}, 0.5f)}; };
    cs.push_back(make("add_gated", shape + ", gate", kPointwise, in3, [](Backend& be, const Tensors& t) {
      Tensor x = be.upload(t[0]);
      be.add_gated(x, be.upload(t[1]), be.upload(t[2]));
      return down(be, {x});
    }));
    cs.push_back(make("add_gated", shape + ", plain residual", kPointwise, in3, [](Backend& be, const Tensors& t) {
      Tensor x = be.upload(t[0]);
      be.add_gated(x, be.upload(t[1]), {});
      return down(be, {x});
    }));
  }
  cs.push_back(refuse("rms_norm", "a weight of the wrong size",
                      [](Inputs& r) { return Tensors{r.randn({5, 37}), r.randn({36})}; },
                      [](Backend& be, const Tensors& t) { be.rms_norm(be.upload(t[0]), be.upload(t[1]), 1e-6f); }));
  cs.push_back(refuse("add_gated", "different shapes", [](Inputs& r) { return Tensors{r.randn({3, 8}), r.randn({4, 8})}; },
                      [](Backend& be, const Tensors& t) {
                        Tensor x = be.upload(t[0]);
                        be.add_gated(x, be.upload(t[1]), {});
                      }));
}

void pointwise(std::vector<OpCase>& cs) {
  for (int64_t n : {1, 7, 4096, 100003, 0}) {
    auto in = [n](Inputs& r) { return Tensors{r.randn({n}, 3.0f), r.randn({n})}; };
    const std::string shape = fmt("n=%lld", (long long)n);
    cs.push_back(make("gelu_tanh", shape, kPointwise, in,
                      [](Backend& be, const Tensors& t) { return down(be, {be.gelu_tanh(be.upload(t[0]))}); }));
    cs.push_back(make("gelu_erf", shape, kPointwise, in,
                      [](Backend& be, const Tensors& t) { return down(be, {be.gelu_erf(be.upload(t[0]))}); }));
    cs.push_back(make("silu", shape, kPointwise, in,
                      [](Backend& be, const Tensors& t) { return down(be, {be.silu(be.upload(t[0]))}); }));
    cs.push_back(make("add", shape, kPointwise, in, [](Backend& be, const Tensors& t) {
      return down(be, {be.add(be.upload(t[0]), be.upload(t[1]))});
    }));
    cs.push_back(make("quick_gelu", shape, kPointwise, in,
                      [](Backend& be, const Tensors& t) { return down(be, {be.quick_gelu(be.upload(t[0]))}); }));
    cs.push_back(make("swiglu", shape, kPointwise, in, [](Backend& be, const Tensors& t) {
      return down(be, {be.swiglu(be.upload(t[0]), be.upload(t[1]))});
    }));
  }
  // The MLP widths of Qwen2.5-VL 7B (18944) and Llama-3 8B (14336), a few tokens.
  for (auto [M, F] : {std::pair<int64_t, int64_t>{3, 18944}, {5, 14336}}) {
    cs.push_back(make("swiglu", fmt("%lld tokens x %lld", (long long)M, (long long)F), kPointwise,
                      [M, F](Inputs& r) { return Tensors{r.randn({M, F}, 2.0f), r.randn({M, F})}; },
                      [](Backend& be, const Tensors& t) { return down(be, {be.swiglu(be.upload(t[0]), be.upload(t[1]))}); }));
  }
  cs.push_back(refuse("swiglu", "different shapes", [](Inputs& r) { return Tensors{r.randn({4, 6}), r.randn({6, 4})}; },
                      [](Backend& be, const Tensors& t) { be.swiglu(be.upload(t[0]), be.upload(t[1])); }));
  cs.push_back(refuse("add", "different shapes", [](Inputs& r) { return Tensors{r.randn({5}), r.randn({6})}; },
                      [](Backend& be, const Tensors& t) { be.add(be.upload(t[0]), be.upload(t[1])); }));
  // A host tensor in another dtype is never an activation of any backend (wrong dtype on
  // the CPU, wrong memory on a GPU).
  cs.push_back(refuse("silu", "a tensor that is not this backend's activation", nullptr,
                      [](Backend& be, const Tensors&) { be.silu(Tensor::zeros({4}, DType::F16)); }));
}

void memory(std::vector<OpCase>& cs) {
  for (auto [r0, r1, cols] : {std::tuple<int64_t, int64_t, int64_t>{3, 5, 7}, {0, 4, 16}, {64, 1, 1536}}) {
    auto in = [=](Inputs& r) { return Tensors{r.randn({r0, cols}), r.randn({r1, cols})}; };
    const std::string shape = fmt("%lld + %lld rows of %lld", (long long)r0, (long long)r1, (long long)cols);
    cs.push_back(make("concat_rows", shape, 0, in, [](Backend& be, const Tensors& t) {
      return down(be, {be.concat_rows(be.upload(t[0]), be.upload(t[1]))});
    }));
    cs.push_back(make("copy", shape, 0, in, [](Backend& be, const Tensors& t) {
      Tensor a = be.upload(t[0]);
      Tensor c = be.copy(a);
      be.add_gated(a, a, {});  // changes a in place: the copy must not share its bytes
      return down(be, {c});
    }));
  }
  for (auto [rows, na, nb] : {std::tuple<int64_t, int64_t, int64_t>{3, 7, 5}, {4, 0, 16}, {0, 3, 3}, {77, 3072, 12288}}) {
    cs.push_back(make("concat_columns", fmt("%lld rows: %lld + %lld columns", (long long)rows, (long long)na, (long long)nb),
                      0, [=](Inputs& r) { return Tensors{r.randn({rows, na}), r.randn({rows, nb})}; },
                      [](Backend& be, const Tensors& t) {
                        return down(be, {be.concat_columns(be.upload(t[0]), be.upload(t[1]))});
                      }));
  }
  cs.push_back(refuse("concat_columns", "different row counts",
                      [](Inputs& r) { return Tensors{r.randn({2, 3}), r.randn({3, 1})}; },
                      [](Backend& be, const Tensors& t) { be.concat_columns(be.upload(t[0]), be.upload(t[1])); }));
  cs.push_back(refuse("concat_rows", "different widths", [](Inputs& r) { return Tensors{r.randn({2, 3}), r.randn({2, 4})}; },
                      [](Backend& be, const Tensors& t) { be.concat_rows(be.upload(t[0]), be.upload(t[1])); }));
  // Weight stores: bytes written or uploaded into device_bytes, then used as a bf16 weight.
  for (int64_t n : {1, 333, 4096}) {
    auto in = [n](Inputs& r) { return Tensors{r.randn({n}), r.randn({n})}; };
    cs.push_back(make("write_bytes", fmt("two bf16 tensors of %lld into one buffer", (long long)n), 0, in,
                      [n](Backend& be, const Tensors& t) {
                        Tensor buf = be.device_bytes(4 * n);
                        Tensor a = t[0].to_dtype(DType::BF16), b = t[1].to_dtype(DType::BF16);
                        be.write_bytes(a.raw(), buf, 0, a.nbytes());
                        be.write_bytes(b.raw(), buf, 2 * n, b.nbytes());
                        return down(be, {be.weight(buf.bytes_view(0, {n}, DType::BF16), 1.0f),
                                         be.weight(buf.bytes_view(2 * n, {n}, DType::BF16), 1.0f)});
                      }));
    cs.push_back(make("start_upload", fmt("a bf16 tensor of %lld at an offset", (long long)n), 0, in,
                      [n](Backend& be, const Tensors& t) {
                        Tensor buf = be.device_bytes(2 * n + 64);
                        Tensor host = be.host_bytes(2 * n);
                        Tensor a = t[0].to_dtype(DType::BF16);
                        std::memcpy(host.raw(), a.raw(), a.nbytes());
                        be.start_upload(host, buf, 64)->wait();
                        return down(be, {be.weight(buf.bytes_view(64, {n}, DType::BF16), 1.0f)});
                      }));
  }
  cs.push_back(refuse("write_bytes", "a write past the end", nullptr, [](Backend& be, const Tensors&) {
    Tensor buf = be.device_bytes(16);
    const char src[32] = {};
    be.write_bytes(src, buf, 8, 16);
  }));
  cs.push_back(refuse("start_upload", "an upload past the end", nullptr, [](Backend& be, const Tensors&) {
    Tensor buf = be.device_bytes(16);
    be.start_upload(be.host_bytes(16), buf, 1)->wait();
  }));
  // weight(): every storage dtype, times its scale.
  for (DType d : {DType::F32, DType::F16, DType::BF16}) {
    cs.push_back(make("weight", std::string("from ") + dtype_name(d) + ", scale 0.5", kPointwise,
                      [](Inputs& r) { return Tensors{r.randn({33, 65})}; },
                      [d](Backend& be, const Tensors& t) { return down(be, {be.weight(t[0].to_dtype(d), 0.5f)}); }));
  }
  cs.push_back(make("weight", "from fp8 e4m3 codes, scale 0.25", kPointwise, [](Inputs&) {
    Tensor codes = Tensor::empty({4, 16}, DType::F8E4M3);
    for (int i = 0; i < 64; ++i) codes.data<uint8_t>()[i] = f32_to_e4m3(float(i - 32) / 4);
    return Tensors{codes};
  }, [](Backend& be, const Tensors& t) { return down(be, {be.weight(t[0], 0.25f)}); }));
}

}  // namespace

std::vector<OpCase> core_cases() {
  std::vector<OpCase> cs;
  products(cs);
  norms(cs);
  pointwise(cs);
  memory(cs);
  return cs;
}

}  // namespace raylight::suite
