// FSDP sharding and offload: shard arithmetic, byte-exact gathers (fp8 included), results
// equal to resident weights for world sizes 1 to 4, and the memory bound
// held weight bytes <= total/N + the two largest blocks (+ the largest tensor outside the
// blocks, gathered only while it is used).
#include <cmath>
#include <cstring>
#include <regex>

#include "backend/backend.h"
#include "cli_runner.h"
#include "core/error.h"
#include "dist/communicator.h"
#include "io/safetensors.h"
#include "models/wan/wan_tiny.h"
#include "parallel/checkpoint_weights.h"
#include "parallel/offload_weights.h"
#include "parallel/sharded_weights.h"
#include "../wan_cases.h"

using namespace raylight;
using namespace raylight::test;

TEST(WeightPlacement, ShardRangesCoverEveryByteOnce) {
  for (size_t bytes : {0, 1, 5, 7, 64, 100, 1001}) {
    for (int n = 1; n <= 5; ++n) {
      size_t covered = 0;
      for (int r = 0; r < n; ++r) {
        ShardRange s = shard_range(bytes, n, r);
        EXPECT_GE(s.chunk * n, bytes);
        EXPECT_EQ(s.chunk % 16, 0u);
        EXPECT_LT(s.chunk, (bytes + n - 1) / n + 16);
        EXPECT_EQ(s.begin, std::min(bytes, r * s.chunk));
        EXPECT_LE(s.size, s.chunk);
        EXPECT_EQ(s.begin, covered) << bytes << " " << n << " " << r;  // contiguous, in order
        covered += s.size;
      }
      EXPECT_EQ(covered, bytes);
    }
  }
}

namespace {

// Wan's blocks, as its family names them.
const BlockOf kWanBlocks = [](const std::string& name) { return numbered_block(name, "blocks."); };

// Every weight through `store` equals the same weight read straight from `source`.
void expect_same_weights(WeightStore& store, WeightStore& source, int blocks) {
  auto cpu = make_cpu_backend();
  store.bind(*cpu);
  source.bind(*cpu);
  for (int b = -1; b < blocks; ++b) {
    if (b >= 0) store.begin_block(b);
    for (const auto& name : source.names()) {
      const bool in_block = name.rfind("blocks." + std::to_string(b) + ".", 0) == 0;
      if (b >= 0 ? !in_block : name.rfind("blocks.", 0) == 0) continue;
      Tensor a = store.get(name), e = source.get(name);
      ASSERT_EQ(a.shape(), e.shape()) << name;
      EXPECT_EQ(std::memcmp(a.raw(), e.raw(), e.nbytes()), 0) << name;
    }
    if (b >= 0) store.end_block(b);
  }
}

}  // namespace

TEST(WeightPlacement, ShardedAndOffloadedWeightsAreByteExact) {
  auto solo = make_solo_communicator("world");
  for (const char* file : {"wan_tiny_t2v.safetensors", "wan_tiny_t2v_scaled_fp8.safetensors"}) {
    const std::string path = std::string(RAYLIGHT_FIXTURE_DIR) + "/" + file;
    CheckpointWeights source(Checkpoint::open(path));
    auto cpu = make_cpu_backend();
    for (bool on_host : {false, true}) {
      ShardedWeights sharded(source, kWanBlocks, *solo, *cpu, on_host);
      expect_same_weights(sharded, source, 2);
    }
    OffloadWeights offload(std::make_unique<CheckpointWeights>(Checkpoint::open(path)), kWanBlocks, *cpu);
    expect_same_weights(offload, source, 2);
  }
}

TEST(WeightPlacement, WeightsOutsideTheirBlockAreRefused) {
  auto solo = make_solo_communicator("world");
  auto tiny = wan_tiny_weights();
  auto cpu = make_cpu_backend();
  ShardedWeights sharded(*tiny, kWanBlocks, *solo, *cpu);
  EXPECT_THROW(sharded.get("blocks.1.ffn.0.weight"), Error);
  EXPECT_THROW(sharded.end_block(0), Error);
}

namespace {

class Placement : public CliTest {
 protected:
  Tensor latent(const std::string& flags, const std::string& name) {
    const std::string out = path(name + ".safetensors");
    EXPECT_EQ(run("sample --steps 2 --width 80 --height 48 --frames 5 " + flags + " --out " + out), 0)
        << flags << "\n" << err_;
    return SafetensorsFile::open(out)->tensor("latent").to_f32();
  }
  // Peak weight bytes per rank, as `raylight sample` prints them.
  std::vector<double> peaks() const {
    std::vector<double> out;
    std::regex line("peak weight memory [0-9.]+ MiB \\(([0-9]+) bytes\\)");
    for (std::sregex_iterator it(err_.begin(), err_.end(), line), end; it != end; ++it)
      out.push_back(std::stod((*it)[1]));
    return out;
  }
};

}  // namespace

TEST_F(Placement, FsdpAndOffloadEqualResidentForOneToFourRanks) {
  Tensor ref = latent("", "ref");
  struct Case { const char* flags; bool exact; };
  for (const Case& c : {Case{"--fsdp", true}, Case{"--offload", true}, Case{"--ranks 2 --fsdp", true},
                        Case{"--ranks 2 --offload --ulysses 2", true}, Case{"--ranks 3 --fsdp --ring 3", false},
                        Case{"--ranks 4 --fsdp --ulysses 4", true},
                        Case{"--ranks 4 --fsdp --cfg-parallel --ring 2", false},
                        Case{"--ranks 4 --fsdp --offload --dp 2 --ulysses 2", true}}) {
    Tensor got = latent(c.flags, "got");
    if (std::string(c.flags).find("--dp 2") != std::string::npos) got = got.reshape({2, -1}).slice_rows(0, 1).reshape(ref.shape());
    if (c.exact) EXPECT_EQ(max_abs_diff(got, ref), 0.0f) << c.flags;
    else EXPECT_LT(max_abs_diff(got, ref), 1e-4f) << c.flags;
  }
}

TEST_F(Placement, ShardedWeightMemoryStaysWithinTheBound) {
  auto tiny = wan_tiny_weights();
  double total = 0, largest_single = 0;
  std::map<int, double> blocks;
  for (const auto& [name, t] : tiny->tensors()) {
    total += t.nbytes();
    if (name.rfind("blocks.", 0) == 0) blocks[std::stoi(name.substr(7))] += t.nbytes();
    else largest_single = std::max(largest_single, double(t.nbytes()));
  }
  double largest_block = 0;
  for (auto& [b, bytes] : blocks) largest_block = std::max(largest_block, bytes);
  const double tensors_per_block = double(tiny->tensors().size()) / blocks.size();
  for (int n = 1; n <= 4; ++n) {
    latent("--ranks " + std::to_string(n) + " --fsdp", "fsdp");
    std::vector<double> p = peaks();
    ASSERT_EQ(p.size(), static_cast<size_t>(n)) << err_;
    // Shards pad each tensor to N chunks of 16-byte multiples: allow 16 N bytes per tensor.
    const double pad = 16.0 * n;
    const double bound = total / n + 2 * (largest_block + pad * tensors_per_block) + largest_single +
                         pad * double(tiny->tensors().size());
    for (double peak : p) {
      EXPECT_LE(peak, bound) << n << " ranks";
      EXPECT_GE(peak, total / n) << n << " ranks: the shards themselves are held";
    }
  }
}

TEST_F(Placement, Fp8CheckpointSurvivesShardAndGather) {
  const std::string fx = std::string(RAYLIGHT_FIXTURE_DIR) + "/";
  auto c = SafetensorsFile::open(fx + "wan_tiny_t2v_scaled_fp8_case.safetensors");
  write_safetensors(path("latent.safetensors"), {{"latent", c->tensor("latent")}});
  write_safetensors(path("context.safetensors"), {{"context", c->tensor("context")}});
  const std::string base = "forward --model " + fx + "wan_tiny_t2v_scaled_fp8.safetensors --latent " +
                           path("latent.safetensors") + " --context " + path("context.safetensors") +
                           " --timestep 700";
  ASSERT_EQ(run(base + " --out " + path("one.safetensors")), 0) << err_;
  ASSERT_EQ(run(base + " --ranks 2 --fsdp --out " + path("two.safetensors")), 0) << err_;
  ASSERT_EQ(run(base + " --ranks 3 --fsdp --out " + path("three.safetensors")), 0) << err_;
  Tensor one = SafetensorsFile::open(path("one.safetensors"))->tensor("velocity").to_f32();
  Tensor two = SafetensorsFile::open(path("two.safetensors"))->tensor("velocity").to_f32();
  Tensor three = SafetensorsFile::open(path("three.safetensors"))->tensor("velocity").to_f32();
  // Two ranks split heads (Ulysses): any byte lost in a gather would show. Three ranks must
  // use Ring for the model's 2 heads, which only reorders the softmax sums.
  EXPECT_EQ(max_abs_diff(one, two), 0.0f);
  EXPECT_LT(max_abs_diff(one, three), 1e-5f);
  EXPECT_LT(max_abs_diff(three, c->tensor("velocity").to_f32()), 5e-5f);
}
