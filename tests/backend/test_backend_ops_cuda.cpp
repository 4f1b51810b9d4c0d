// The op suite on the GPU machine (label `gpu`): every case on the CUDA backend against the
// CPU reference, on three backend configurations (cuDNN attention with native fp8 products;
// our own attention kernel with fp8 weights dequantised per product; fp8 weights made bf16
// at load). Every fresh device buffer is filled with NaN first, so an output element a
// kernel forgets to write fails its case. The reference outputs are computed once per case.
// Also the PyTorch goldens of the new families' ops (relative L2 under 1e-2 in bf16).
#include <gtest/gtest.h>

#include <map>

#include "backend/cuda/cuda_backend.h"
#include "golden_cases.h"
#include "op_suite.h"
#include "suite_names.h"

using namespace raylight;
using namespace raylight::suite;

namespace {

const std::vector<OpCase>& cases() {
  static const std::vector<OpCase> all = all_cases();
  return all;
}

struct Config {
  const char* name;
  AttentionKernel attention;
  bool fp8_gemm, keep_fp8;
};
const Config kConfigs[] = {{"cudnn_fp8gemm", AttentionKernel::Cudnn, true, true},
                           {"own_fp8dequant", AttentionKernel::Own, false, true},
                           {"own_bf16weights", AttentionKernel::Own, true, false}};

CudaBackend& backend(size_t config) {
  static std::map<size_t, std::unique_ptr<CudaBackend>> made;
  auto& b = made[config];
  if (!b) {
    CudaOptions o;
    o.poison = true;
    o.attention = kConfigs[config].attention;
    o.fp8_gemm = kConfigs[config].fp8_gemm;
    o.keep_fp8 = kConfigs[config].keep_fp8;
    b = make_cuda_backend(o);
  }
  return *b;
}

// Replays the reference's outputs for a case instead of recomputing them per configuration.
class CachedReference {
 public:
  Tensors get(size_t index, const Tensors& host) {
    auto it = outputs_.find(index);
    if (it != outputs_.end()) return it->second;
    return outputs_[index] = cases()[index].run(*cpu_, host);
  }

 private:
  std::unique_ptr<Backend> cpu_ = make_cpu_backend();
  std::map<size_t, Tensors> outputs_;
};

using Param = std::tuple<size_t, size_t>;  // configuration, case

std::string param_name(const Param& p) {
  const size_t index = std::get<1>(p);
  return std::string(kConfigs[std::get<0>(p)].name) + "_" + test_name(index, cases()[index].name());
}
class CudaOpSuite : public ::testing::TestWithParam<Param> {};

TEST_P(CudaOpSuite, MatchesTheCpuReference) {
  if (!cuda_device_available()) GTEST_FAIL() << "no CUDA device: the gpu-labelled tests run on a GPU machine";
  const auto [config, index] = GetParam();
  const OpCase& c = cases()[index];
  static CachedReference reference;
  // The same seed for every configuration, so the cached reference fits.
  OpCase replay = c;
  if (!c.refused)
    replay.run = [&, index](Backend& be, const Tensors& host) {
      return be.device() == Device::CPU ? reference.get(index, host) : c.run(be, host);
    };
  static std::unique_ptr<Backend> cpu = make_cpu_backend();
  const CaseResult r = run_case(replay, backend(config), *cpu, 1000 + index);
  EXPECT_TRUE(r.ok) << kConfigs[config].name << " " << c.name() << ": " << r.message;
  RecordProperty("error", r.message);
}

INSTANTIATE_TEST_SUITE_P(Ops, CudaOpSuite,
                         ::testing::Combine(::testing::Range<size_t>(0, std::size(kConfigs)),
                                            ::testing::Range<size_t>(0, cases().size())),
                         [](const ::testing::TestParamInfo<Param>& i) { return param_name(i.param); });

class CudaGolden : public ::testing::TestWithParam<size_t> {};

TEST_P(CudaGolden, MatchesPyTorch) {
  if (!cuda_device_available()) GTEST_FAIL() << "no CUDA device: the gpu-labelled tests run on a GPU machine";
  static const std::vector<GoldenCase> all = golden_cases();
  static auto file = SafetensorsFile::open(golden_path());
  const GoldenCase& g = all[GetParam()];
  const auto outputs = g.run(backend(0), *file);
  ASSERT_FALSE(outputs.empty());
  for (size_t i = 0; i < outputs.size(); ++i) {
    ASSERT_EQ(outputs[i].first.shape(), outputs[i].second.shape()) << g.name << " output " << i;
    EXPECT_LT(rel_l2(outputs[i].first, outputs[i].second), 1e-2) << g.name << " output " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, CudaGolden, ::testing::Range<size_t>(0, golden_cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& i) {
                           return test_name(i.param, golden_cases()[i.param].name);
                         });

}  // namespace
