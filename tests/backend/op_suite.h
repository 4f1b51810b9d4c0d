// One table-driven op suite for every backend, in the manner of llama.cpp's
// test-backend-ops: each case names an op of the Backend interface, makes host inputs
// (rounded to bf16, so a bf16 backend and the fp32 CPU reference see the same values), runs
// the op on a target backend and on the CPU reference, and compares every output by its
// relative L2 error. A case may instead expect the op to refuse its operands.
//
// The cases live in cases_*.cpp, one file per op group. The suite is run by
// test_backend_ops_cpu.cpp (CI: the CPU backend against itself, which must be exact and
// deterministic, and the table's coverage of the interface) and test_backend_ops_cuda.cpp
// (the GPU machine: CUDA against the CPU, label `gpu`).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace raylight::suite {

// Host inputs of one case, made from the case's seed.
class Inputs {
 public:
  explicit Inputs(uint64_t seed) : seed_(seed) {}
  // N(offset, scale^2) values rounded to bf16, fp32 storage.
  Tensor randn(const Shape& shape, float scale = 1.0f, float offset = 0.0f);
  // Uniform in [lo, hi), rounded to bf16.
  Tensor uniform(const Shape& shape, float lo, float hi);

 private:
  uint64_t seed_;
  uint64_t count_ = 0;
};

using Tensors = std::vector<Tensor>;

struct OpCase {
  std::string op;     // the Backend op it runs, as named in backend.h / ops/*.h
  std::string shape;  // what this case varies ("M=7 K=13 N=5, bias")
  // Largest relative L2 error of any output on a bf16 backend (0: bitwise equal). The CPU
  // against itself must always be bitwise equal.
  double tolerance = 0;
  std::function<Tensors(Inputs&)> inputs;
  // Runs the op on `be` over the host inputs; returns host fp32 outputs.
  std::function<Tensors(Backend& be, const Tensors& in)> run;
  bool refused = false;  // the op must throw raylight::Error instead
  std::string name() const { return op + " " + shape; }
};

// A case that runs `run` on the inputs `in` makes, compared within `tol` (the groups' builder).
OpCase make(std::string op, std::string shape, double tol, std::function<Tensors(Inputs&)> in,
            std::function<Tensors(Backend&, const Tensors&)> run);
// A case whose op must throw raylight::Error on every backend (`run` returns nothing).
OpCase refuse(std::string op, std::string what, std::function<Tensors(Inputs&)> in,
              std::function<void(Backend&, const Tensors&)> run);
// fp8 e4m3 codes of w / scale (saturating), as checkpoints store them.
Tensor fp8_codes(const Tensor& w, float scale);

// Every case of every group.
std::vector<OpCase> all_cases();
std::vector<OpCase> core_cases();       // cases_core.cpp: products, norms, pointwise, memory
std::vector<OpCase> attention_cases();  // cases_attention.cpp: attention, RoPE, sequence helpers
std::vector<OpCase> family_cases();     // cases_families.cpp: DiT, T5, VAE ops
std::vector<OpCase> precise_cases();    // cases_precise.cpp: fp32 operands (residual stream)
std::vector<OpCase> attention_fp8_cases();  // cases_attention_fp8.cpp: fp8 attention vs its emulation
std::vector<OpCase> fused_cases();      // cases_fused.cpp: q/k norm + RoPE, the split product
std::vector<OpCase> norm_absmax_cases();  // cases_norm_absmax.cpp: the norms' absmax, products given it
std::vector<OpCase> fp8_rows_cases();   // cases_fp8_rows.cpp: rows held as fp8 codes and their product

// The outcome of one case on a target backend.
struct CaseResult {
  bool ok = false;
  std::string message;  // what went wrong, or the errors measured
  double worst = 0;     // largest relative L2 error over the outputs
};
CaseResult run_case(const OpCase& c, Backend& target, Backend& reference, uint64_t seed);

// Helpers for writing cases.
// 0 when `absmax` (host [1]) is exactly max |out| over the downloaded `out`, NaN otherwise
// (a norm's absmax output checked against that backend's own result).
Tensor absmax_check(const Tensor& out, const Tensor& absmax);
// Host fp32 tensor -> an fp32 tensor on be's device (log-sum-exp operands).
Tensor upload_f32(Backend& be, const Tensor& host);
// Downloads each output.
Tensors down(Backend& be, std::initializer_list<Tensor> outs);
// printf-style case names.
std::string fmt(const char* f, ...);
// ||a - b|| / ||b||, with any non-finite element of a counted as failure (1e9).
double rel_l2(const Tensor& a, const Tensor& b);

}  // namespace raylight::suite
