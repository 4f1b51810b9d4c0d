// The op suite in CI: every case on the CPU backend against a second CPU backend (the
// reference must be deterministic, so outputs are bitwise equal, refusals are refused, and
// empty shapes run), which also proves the table sound before it costs GPU time; the CPU
// backend against the PyTorch goldens of the new families' ops (an independent reference,
// relative L2 under 1e-5); and the suite's coverage: every op a backend implements (each
// *_impl in src/backend/backend.h and src/backend/ops/*.h) has cases, and the op list in
// docs/architecture.md is exactly the suite's.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

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

class CpuOpSuite : public ::testing::TestWithParam<size_t> {};

TEST_P(CpuOpSuite, MatchesTheReferenceBitForBit) {
  static auto target = make_cpu_backend();
  static auto reference = make_cpu_backend();
  const OpCase& c = cases()[GetParam()];
  const CaseResult r = run_case(c, *target, *reference, 1000 + GetParam());
  EXPECT_TRUE(r.ok) << c.name() << ": " << r.message;
}

INSTANTIATE_TEST_SUITE_P(Ops, CpuOpSuite, ::testing::Range<size_t>(0, cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& i) { return test_name(i.param, cases()[i.param].name()); });

const std::vector<GoldenCase>& goldens() {
  static const std::vector<GoldenCase> all = golden_cases();
  return all;
}

class CpuGolden : public ::testing::TestWithParam<size_t> {};

TEST_P(CpuGolden, MatchesPyTorch) {
  static auto be = make_cpu_backend();
  static auto file = SafetensorsFile::open(golden_path());
  const GoldenCase& g = goldens()[GetParam()];
  const auto outputs = g.run(*be, *file);
  ASSERT_FALSE(outputs.empty());
  for (size_t i = 0; i < outputs.size(); ++i) {
    ASSERT_EQ(outputs[i].first.shape(), outputs[i].second.shape()) << g.name << " output " << i;
    EXPECT_LT(rel_l2(outputs[i].first, outputs[i].second), 1e-5) << g.name << " output " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, CpuGolden, ::testing::Range<size_t>(0, goldens().size()),
                         [](const ::testing::TestParamInfo<size_t>& i) { return test_name(i.param, goldens()[i.param].name); });

std::string read(const std::filesystem::path& p) {
  std::ifstream f(p);
  EXPECT_TRUE(f) << "cannot read " << p;
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Names X of every `X_impl(` declared in the op headers.
std::set<std::string> implemented_ops() {
  const std::filesystem::path src = RAYLIGHT_SOURCE_DIR "/src/backend";
  std::vector<std::filesystem::path> headers{src / "backend.h"};
  for (const auto& e : std::filesystem::directory_iterator(src / "ops"))
    if (e.path().extension() == ".h" && e.path().filename() != "op_checks.h") headers.push_back(e.path());
  std::set<std::string> ops;
  const std::regex impl(R"((\w+)_impl\()");
  for (const auto& h : headers) {
    const std::string text = read(h);
    for (std::sregex_iterator it(text.begin(), text.end(), impl), end; it != end; ++it) ops.insert((*it)[1]);
  }
  return ops;
}

// The op names in the op table of docs/architecture.md (rows "| `name` | ...").
std::set<std::string> documented_ops() {
  const std::string doc = read(RAYLIGHT_SOURCE_DIR "/docs/architecture.md");
  const size_t begin = doc.find("<!-- op table -->"), end = doc.find("<!-- end of op table -->");
  EXPECT_NE(begin, std::string::npos) << "docs/architecture.md has no op table";
  EXPECT_NE(end, std::string::npos);
  std::set<std::string> ops;
  if (begin == std::string::npos || end == std::string::npos) return ops;
  const std::string table = doc.substr(begin, end - begin);
  const std::regex row(R"(\n\| `(\w+)`)");
  for (std::sregex_iterator it(table.begin(), table.end(), row), e; it != e; ++it) ops.insert((*it)[1]);
  return ops;
}

TEST(OpSuite, CoversEveryOpOfTheInterface) {
  std::set<std::string> run, refused;
  for (const OpCase& c : cases()) (c.refused ? refused : run).insert(c.op);
  const std::set<std::string> impls = implemented_ops();
  ASSERT_GT(impls.size(), 20u) << "the header scan found too few ops";
  for (const std::string& op : impls) EXPECT_TRUE(run.count(op)) << op << "_impl has no suite case";
  const std::set<std::string> documented = documented_ops();
  for (const std::string& op : run) EXPECT_TRUE(documented.count(op)) << op << " is not in docs/architecture.md's op table";
  for (const std::string& op : documented) EXPECT_TRUE(run.count(op)) << op << " is documented but has no suite case";
}

// The ops the coming families need are checked against PyTorch too, not only against the
// CPU backend they are computed by.
TEST(OpSuite, NewFamilyOpsHavePyTorchGoldens) {
  std::set<std::string> golden;
  for (const GoldenCase& g : goldens()) golden.insert(g.op);
  for (const char* op : {"quick_gelu", "swiglu", "apply_rope", "causal_attention", "attention", "group_norm", "conv2d",
                         "upsample_nearest2x"})
    EXPECT_TRUE(golden.count(op)) << op << " has no PyTorch golden";
}

TEST(OpSuite, CaseNamesAreUnique) {
  std::set<std::string> names;
  for (const OpCase& c : cases()) EXPECT_TRUE(names.insert(c.name()).second) << "duplicate case " << c.name();
}

}  // namespace
