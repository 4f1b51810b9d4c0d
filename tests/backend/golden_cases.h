// The ops the coming families need, checked on a backend against PyTorch goldens
// (tests/fixtures/op_golden.safetensors, made by tests/fixtures/make_op_golden.py): an
// independent reference for the CPU backend (CI) and, with bf16 tolerances, for CUDA.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "io/safetensors.h"

namespace raylight::suite {

struct GoldenCase {
  std::string name;  // the fixture's case prefix
  std::string op;    // the op it checks
  // Runs the op on `be` over the fixture's inputs; returns (got, want) pairs, host fp32.
  std::function<std::vector<std::pair<Tensor, Tensor>>(Backend& be, const SafetensorsFile& f)> run;
};

std::vector<GoldenCase> golden_cases();
// The fixture file.
std::string golden_path();

}  // namespace raylight::suite
