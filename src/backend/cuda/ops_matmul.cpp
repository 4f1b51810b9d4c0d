// Linear layers through cuBLASLt. bf16 weights multiply directly; fp8 weights use the fp8
// tensor-core product with the activation quantised per tensor on the fly (or, when that
// is off or refused, are dequantised to bf16 scratch first). GELU rides in the epilogue.
// fp32 activations take an fp32 tiled product instead (precise.cu): small products only.
#include <algorithm>
#include <cmath>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/ops.h"

namespace raylight::cuda::op {
namespace {

// An activation's e4m3 codes and its scale, made once and shared by every fp8 product over
// it (Backend::linears: a block's q, k and v).
struct Fp8Input {
  Tensor codes;   // [M, K] e4m3
  Tensor scales;  // per tensor: amax at [0] (when measured here), the activation's scale at [4]: each on its
                  // own 16 bytes. cuBLASLt (13.x, H200) refuses every fp8 algorithm with NOT_SUPPORTED when
                  // a scale pointer is only 4-byte aligned, as the scale at [1] was (tests/cuda
                  // CudaProbe.Fp8GemmVariants). Per row: [M] descales.
  bool rows = false;
  const float* scale() const { return scales.data<float>() + (rows ? 0 : 4); }
};

// With CudaOptions::fp8_row_scales, products whose x comes without an absmax quantise it per
// row instead of per tensor where K is at most this: one pass over x (no absmax pass) and a
// scale per row. On an H200 (cuBLASLt 13.1, Wan 14B shapes, M 32,760, random codes) the
// outer-vector product ran 1.8 % slower than the per-tensor one at K 5,120 (N 5,120: less than
// the absmax pass it saves) but 15 % slower at K 13,824 (more than it saves), so longer rows
// keep one scale. (On constant codes, which draw less power, it lost nothing at either K.)
constexpr int64_t kRowScaleMaxK = 8192;

bool row_scales(const Context& ctx, int64_t K, bool has_absmax) {
  return ctx.opt.fp8_row_scales && !has_absmax && K <= kRowScaleMaxK;
}

// x quantised into *q (per row where `rows`, else per tensor), unless an earlier product did
// so already. x_absmax: max |x| given by the norm that wrote x (fp32 [1]), so x is read once
// here instead of twice; undefined: measured here.
const Fp8Input& quantised(Context& ctx, const Tensor& x, const Tensor& x_absmax, Fp8Input& q, bool rows) {
  if (q.codes.defined()) return q;
  const int64_t n = x.numel();
  q.codes = ctx.alloc(x.shape(), DType::F8E4M3);
  if (rows) {
    q.rows = true;
    q.scales = ctx.alloc({x.dim(0)}, DType::F32);
    Context::Scope step(ctx, kDetail, 0, "linear.fp8_quantise_rows");
    quantize_rows_e4m3(bp(x), x.dim(0), x.dim(1), q.codes.data<uint8_t>(), q.scales.data<float>(), ctx.stream);
    return q;
  }
  q.scales = ctx.alloc({8}, DType::F32);
  float* own = q.scales.data<float>();
  if (!x_absmax.defined()) {
    Context::Scope step(ctx, kDetail, 0, "linear.fp8_absmax");
    absmax(bp(x), n, own, ctx.stream);
  }
  const float* amax = x_absmax.defined() ? x_absmax.data<float>() : own;
  Context::Scope step(ctx, kDetail, 0, "linear.fp8_quantise");
  quantize_e4m3(bp(x), n, amax, q.codes.data<uint8_t>(), own + 4, ctx.stream);
  return q;
}

// Whether an fp8 weight multiplies natively (fp8 tensor cores) rather than dequantised: the
// fp8 GEMM is on and the sizes fit Hopper's fp8 kernels. try_linear and the plans prepared
// for it (prepare_linears) decide by this one rule.
bool native_fp8(const Context& ctx, int64_t N, int64_t K, int64_t ldw, int64_t k0) {
  return ctx.opt.fp8_gemm && K % 16 == 0 && N % 16 == 0 && ldw % 16 == 0 && k0 % 16 == 0;
}

// *out = x w^T (+ b), or with `accumulate` *out += x w^T: w's columns [k0, k0 + K) when x
// has K < w.dim(1) columns (a product over part of a weight's inputs, rows of the weight still
// w.dim(1) apart). `shared`: x's fp8 codes when several products read x (made on first use);
// null: made here for this product alone. x_absmax: as quantised() takes it. False when
// cuBLASLt has no algorithm.
bool try_linear(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b, Epilogue ep, Tensor* out,
                const char* name, int64_t k0 = 0, bool accumulate = false, Fp8Input* shared = nullptr,
                const Tensor& x_absmax = {}) {
  const int64_t M = x.dim(0), K = x.dim(1), N = w.dim(0), ldw = w.dim(1);
  const bf16* bias = b.defined() ? bp(b) : nullptr;
  Context::Scope s(ctx, kMatmul, 2.0 * M * N * K, name);
  Tensor y = accumulate ? *out : ctx.alloc({M, N}, DType::BF16);
  bool ok = false;
  if (w.dtype() == DType::BF16) {
    ok = ctx.gemm->run(x.raw(), DType::BF16, nullptr, bp(w) + k0, DType::BF16, 1.0f, bias, y.raw(), M, N, K, ep,
                       false, ldw, accumulate);
  } else {
    if (native_fp8(ctx, N, K, ldw, k0)) {
      Fp8Input own;
      const Fp8Input& xq = quantised(ctx, x, x_absmax, shared ? *shared : own, row_scales(ctx, K, x_absmax.defined()));
      auto product = [&](const Fp8Input& in) {
        return ctx.gemm->run(in.codes.raw(), DType::F8E4M3, in.scale(), static_cast<const uint8_t*>(w.raw()) + k0,
                             DType::F8E4M3, w.scale(), bias, y.raw(), M, N, K, ep, false, ldw, accumulate, in.rows);
      };
      ok = product(xq);
      if (!ok && xq.rows) {  // no per-row algorithm for this product: one scale, as before
        Fp8Input per_tensor;
        ok = product(quantised(ctx, x, x_absmax, per_tensor, false));
      }
    }
    if (!ok) {
      Tensor wb = ctx.alloc(w.shape(), DType::BF16);
      convert_to_bf16(w.raw(), DType::F8E4M3, w.scale(), bp(wb), w.numel(), ctx.stream);
      ok = ctx.gemm->run(x.raw(), DType::BF16, nullptr, bp(wb) + k0, DType::BF16, 1.0f, bias, y.raw(), M, N, K, ep,
                         false, ldw, accumulate);
    }
  }
  if (ok) *out = y;
  return ok;
}

// linear or linear_gelu_tanh of a bf16 x (GELU as its own kernel where the epilogue has no
// algorithm).
Tensor linear_term(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b, bool gelu, Fp8Input* shared,
                   const Tensor& x_absmax, const char* name) {
  Tensor y;
  if (try_linear(ctx, x, w, b, gelu ? Epilogue::Gelu : Epilogue::None, &y, name, 0, false, shared, x_absmax)) return y;
  if (!gelu || !try_linear(ctx, x, w, b, Epilogue::None, &y, name, 0, false, shared, x_absmax))
    fail(name, ": cuBLASLt has no algorithm for x ", shape_str(x.shape()), " w ", shape_str(w.shape()));
  Context::Scope sc(ctx, kOther, 0, "gelu_tanh");
  unary(Unary::GeluTanh, bp(y), bp(y), y.numel(), ctx.stream);
  return y;
}

}  // namespace

namespace {

// fp32 activations (time embedding, a DiT head) get an fp32 product and result.
Tensor linear_f32_op(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b) {
  const int64_t M = x.dim(0), K = x.dim(1), N = w.dim(0);
  Context::Scope s(ctx, kMatmul, 2.0 * M * N * K);
  Tensor y = ctx.alloc({M, N}, DType::F32);
  cuda::linear_f32(x.data<float>(), w.raw(), w.dtype(), w.scale(), b.defined() ? bp(b) : nullptr, y.data<float>(), M,
                   N, K, ctx.stream);
  return y;
}

}  // namespace

Tensor linear(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& x_absmax) {
  if (x.dtype() == DType::F32) return linear_f32_op(ctx, x, w, b);
  return linear_term(ctx, x, w, b, false, nullptr, x_absmax, "linear");
}

Tensor linear_gelu_tanh(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& x_absmax) {
  return linear_term(ctx, x, w, b, true, nullptr, x_absmax, "linear_gelu_tanh");
}

// One quantisation of x for every fp8 weight among the terms; bf16 weights read x as it is.
std::vector<Tensor> linears(Context& ctx, const Tensor& x, const std::vector<LinearTerm>& terms,
                            const Tensor& x_absmax) {
  Fp8Input shared;
  std::vector<Tensor> out;
  out.reserve(terms.size());
  for (const LinearTerm& t : terms)
    out.push_back(linear_term(ctx, x, t.w, t.b, t.gelu_tanh, &shared, x_absmax, "linears"));
  return out;
}

// Two products over the weight's column ranges, the second accumulating into the first's
// output: no [M, Ka + Kb] concatenation is written and read back.
Tensor linear_pair(Context& ctx, const Tensor& a, const Tensor& b, const Tensor& w, const Tensor& bias) {
  Tensor y;
  if (try_linear(ctx, a, w, bias, Epilogue::None, &y, "linear_pair") &&
      try_linear(ctx, b, w, {}, Epilogue::None, &y, "linear_pair", a.dim(1), true))
    return y;
  return linear(ctx, concat_columns(ctx, a, b), w, bias, {});
}

// --- Plans before the first call (LinearPlans) ---------------------------------------------
namespace {

// One cuBLASLt plan a product's call reaches, as try_linear calls Gemm::run.
struct PlanCall {
  DType x_type, w_type;
  bool bias;
  int64_t M, N, K;
  Epilogue ep;
  int64_t ldw, w_offset;  // w's row stride in elements; the first column's byte offset
  bool accumulate;
  bool x_rows = false;  // per-row scales of x
  bool operator==(const PlanCall& o) const {
    return x_type == o.x_type && w_type == o.w_type && bias == o.bias && M == o.M && N == o.N && K == o.K &&
           ep == o.ep && ldw == o.ldw && w_offset == o.w_offset && accumulate == o.accumulate && x_rows == o.x_rows;
  }
};

Gemm::Prepared prepare_call(Context& ctx, const PlanCall& c, const Gemm::Scratch* scratch) {
  return ctx.gemm->prepare(c.x_type, c.w_type, c.bias, c.M, c.N, c.K, c.ep, c.ldw, c.w_offset, c.accumulate, scratch,
                           c.x_rows);
}

// The plans try_linear reaches for s with epilogue ep, in its order (native fp8, then bf16:
// a bf16 weight, or an fp8 one dequantised), made without timing; those that want timing
// are added to *timed. True when one has an algorithm: the call stops there.
bool plan_product(Context& ctx, const LinearShape& s, Epilogue ep, std::vector<PlanCall>* timed) {
  const int64_t K = s.reads(), k0 = s.first_column;
  // As the weight op: stored fp8 stays fp8 codes where the backend keeps them, else bf16.
  const bool fp8 = s.weight_dtype == DType::F8E4M3 && ctx.opt.keep_fp8;
  std::vector<PlanCall> tries;
  if (fp8 && native_fp8(ctx, s.out, K, s.width, k0)) {
    // Whether x will come with an absmax is the caller's to know: where per-row scales may
    // serve, their plan is made too (a plan the call then does not use costs a heuristic query).
    if (row_scales(ctx, K, false)) {
      const PlanCall rows{DType::F8E4M3, DType::F8E4M3, s.bias, s.rows, s.out, K, ep, s.width, k0, s.accumulate, true};
      if (prepare_call(ctx, rows, nullptr) == Gemm::Prepared::WantsTiming &&
          std::find(timed->begin(), timed->end(), rows) == timed->end())
        timed->push_back(rows);
    }
    tries.push_back({DType::F8E4M3, DType::F8E4M3, s.bias, s.rows, s.out, K, ep, s.width, k0, s.accumulate});
  }
  tries.push_back({DType::BF16, DType::BF16, s.bias, s.rows, s.out, K, ep, s.width, k0 * 2, s.accumulate});
  for (const PlanCall& c : tries) {
    const Gemm::Prepared r = prepare_call(ctx, c, nullptr);
    // Several products share a plan (every block's q): it is timed once.
    if (r == Gemm::Prepared::WantsTiming && std::find(timed->begin(), timed->end(), c) == timed->end())
      timed->push_back(c);
    if (r != Gemm::Prepared::NoAlgorithm) return true;
  }
  return false;
}

// Device memory of the timing, freed when it ends (not the caching allocator's: nothing of
// it stays reserved).
struct Scratch {
  void* p = nullptr;
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    if (p) cudaFree(p);
  }
  // False when the device has no room (the plan is then timed by its first call).
  bool allocate(size_t bytes) {
    if (cudaMalloc(&p, std::max<size_t>(bytes, 256)) == cudaSuccess) return true;
    (void)cudaGetLastError();
    p = nullptr;
    return false;
  }
};

// Times the plans of `calls` on random operands of their sizes, as their first calls would
// on theirs. Where the scratch does not fit on the device, their first calls time them.
void time_plans(Context& ctx, const std::vector<PlanCall>& calls) {
  size_t x_bytes = 0, w_bytes = 0, y_bytes = 0, bias_bytes = 0;
  int64_t max_rows = 1;  // descales a per-row plan reads
  for (const PlanCall& c : calls) {
    max_rows = std::max(max_rows, c.M);
    x_bytes = std::max(x_bytes, shape_nbytes({c.M, c.K}, c.x_type));
    w_bytes = std::max(w_bytes, shape_nbytes({c.N, c.ldw}, c.w_type));
    y_bytes = std::max(y_bytes, shape_nbytes({c.M, c.N}, DType::BF16));
    bias_bytes = std::max(bias_bytes, shape_nbytes({c.N}, DType::BF16));
  }
  Scratch x, w, y, bias, scale;
  if (!x.allocate(x_bytes) || !w.allocate(w_bytes) || !y.allocate(y_bytes) || !bias.allocate(bias_bytes) ||
      !scale.allocate(size_t(max_rows) * sizeof(float)))
    return;
  fill_f32(static_cast<float*>(scale.p), max_rows, 1.0f, ctx.stream);
  random_bf16(static_cast<bf16*>(bias.p), static_cast<int64_t>(bias_bytes / 2), 3, 0.0f, 0.1f, ctx.stream);
  const Gemm::Scratch operands{x.p, static_cast<const float*>(scale.p), w.p, bias.p, y.p};
  for (const PlanCall& c : calls) {
    // Operands like a forward's: unit activations, weights of std 1/sqrt(K); fp8 codes over
    // their whole range, as quantised activations and weights are.
    const int64_t nx = c.M * c.K, nw = c.N * c.ldw;
    const float w_std = 1.0f / std::sqrt(static_cast<float>(c.K));
    if (c.x_type == DType::F8E4M3) {
      random_e4m3(static_cast<uint8_t*>(x.p), nx, 1, 1.0f, 4.5f / 448.0f, ctx.stream);
      random_e4m3(static_cast<uint8_t*>(w.p), nw, 2, w_std, 4.5f * w_std / 448.0f, ctx.stream);
    } else {
      random_bf16(static_cast<bf16*>(x.p), nx, 1, 0.0f, 1.0f, ctx.stream);
      random_bf16(static_cast<bf16*>(w.p), nw, 2, 0.0f, w_std, ctx.stream);
    }
    prepare_call(ctx, c, &operands);
  }
  RL_CUDA(cudaStreamSynchronize(ctx.stream));
}

}  // namespace

bool prepare_linears(Context& ctx, const std::vector<LinearShape>& shapes) {
  std::vector<PlanCall> timed;
  bool all = true;
  for (const LinearShape& s : shapes) {
    // linear_term: the GELU epilogue, or without it (GELU as a kernel) where it has no algorithm.
    bool ok = plan_product(ctx, s, s.gelu ? Epilogue::Gelu : Epilogue::None, &timed);
    if (!ok && s.gelu) ok = plan_product(ctx, s, Epilogue::None, &timed);
    all = all && ok;
  }
  if (!timed.empty()) time_plans(ctx, timed);
  return all;
}

}  // namespace raylight::cuda::op
