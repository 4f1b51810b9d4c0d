// Every parallel layout against one rank: the tiny model's sampled latents under
// Ulysses, Ring, USP, CFG parallel and data parallel (and mixes), on CPU ranks started
// through mpirun by the raylight command itself. Token counts are chosen so the sequence
// does not split evenly (padding must be masked). Ulysses, CFG and DP move data without
// arithmetic and must match exactly; Ring merges partial softmaxes in another order, so
// it matches within fp32 rounding: 1e-4 absolute on latents of magnitude ~5.
#include <cmath>
#include <csignal>
#include <chrono>

#include "cli_runner.h"
#include "io/safetensors.h"

using namespace raylight;

namespace {

class Layouts : public CliTest {
 protected:
  // 80x48x5 -> 2x3x5 = 30 tokens; 80x32x5 -> 20 tokens. Neither divides by 4.
  Tensor sample(const std::string& size, const std::string& extra, const std::string& name) {
    const std::string out = path(name + ".safetensors");
    EXPECT_EQ(run("sample --steps 3 " + size + " " + extra + " --out " + out), 0) << extra << "\n" << err_;
    return SafetensorsFile::open(out)->tensor("latent").to_f32();
  }
  bool any_rank_left() const;
  static float max_diff(const Tensor& a, const Tensor& b) {
    EXPECT_EQ(a.numel(), b.numel());
    float m = 0;
    for (int64_t i = 0; i < a.numel() && i < b.numel(); ++i)
      m = std::max(m, std::fabs(a.f32()[i] - b.f32()[i]));
    return m;
  }
};

const char* kSizes[] = {"--width 80 --height 48 --frames 5", "--width 80 --height 32 --frames 5"};

}  // namespace

TEST_F(Layouts, SequenceParallelMatchesOneRank) {
  struct Case { const char* flags; bool exact; };
  const Case cases[] = {
      {"--ranks 1", true},
      {"--ranks 2 --ulysses 2", true},
      {"--ranks 4 --ulysses 4", true},
      {"--ranks 2 --ring 2", false},
      {"--ranks 3 --ring 3", false},
      {"--ranks 4 --ring 4", false},
      {"--ranks 4 --ulysses 2 --ring 2", false},
  };
  for (const char* size : kSizes) {
    Tensor ref = sample(size, "", "ref");
    for (const auto& c : cases) {
      Tensor got = sample(size, c.flags, "got");
      ASSERT_EQ(got.shape(), ref.shape()) << c.flags;
      if (c.exact) EXPECT_EQ(max_diff(got, ref), 0.0f) << size << " " << c.flags;
      else EXPECT_LT(max_diff(got, ref), 1e-4f) << size << " " << c.flags;
    }
  }
}

TEST_F(Layouts, CfgParallelAndCombinationsMatchOneRank) {
  const char* size = kSizes[0];
  Tensor ref = sample(size, "", "ref");
  EXPECT_EQ(max_diff(sample(size, "--ranks 2 --cfg-parallel", "c2"), ref), 0.0f);
  EXPECT_EQ(max_diff(sample(size, "--ranks 4 --cfg-parallel --ulysses 2", "c2u2"), ref), 0.0f);
  EXPECT_LT(max_diff(sample(size, "--ranks 4 --cfg-parallel --ring 2", "c2r2"), ref), 1e-4f);
}

TEST_F(Layouts, DataParallelSamplesConsecutiveSeeds) {
  const char* size = kSizes[1];
  Tensor s0 = sample(size, "--seed 7", "s0");
  Tensor s1 = sample(size, "--seed 8", "s1");
  for (const char* flags : {"--ranks 2 --dp 2", "--ranks 4 --dp 2 --ulysses 2", "--ranks 4 --dp 2 --cfg-parallel"}) {
    Tensor both = sample(size, std::string("--seed 7 ") + flags, "dp");
    ASSERT_EQ(both.shape()[0], 2) << flags;
    const int64_t n = s0.numel();
    Tensor first = both.reshape({2, n}).slice_rows(0, 1).reshape(s0.shape());
    Tensor second = both.reshape({2, n}).slice_rows(1, 2).reshape(s0.shape());
    EXPECT_EQ(max_diff(first, s0), 0.0f) << flags;
    EXPECT_EQ(max_diff(second, s1), 0.0f) << flags;
  }
}

TEST_F(Layouts, ImpossibleLayoutsSayWhatWouldWork) {
  const std::string out = " --steps 1 --out " + path("x.safetensors");
  EXPECT_EQ(run("sample --ranks 3 --ulysses 3" + out), 2);
  EXPECT_NE(err_.find("does not divide the model's 4 attention heads"), std::string::npos) << err_;
  EXPECT_NE(err_.find("1, 2, 4"), std::string::npos) << err_;
  EXPECT_EQ(run("sample --ranks 4 --ulysses 2" + out), 2);
  EXPECT_NE(err_.find("needs 2 ranks but the job has 4"), std::string::npos) << err_;
  EXPECT_NE(err_.find("--ulysses 2 --ring 2"), std::string::npos) << err_;
  EXPECT_EQ(run("sample --ranks 2 --cfg-parallel --cfg 1" + out), 2);
  EXPECT_NE(err_.find("--cfg-parallel needs guidance"), std::string::npos) << err_;
  EXPECT_EQ(run("sample --gpus 0,x" + out), 2);
  EXPECT_NE(err_.find("--gpus expects a list of GPU numbers"), std::string::npos) << err_;
  EXPECT_EQ(run("sample --gpus 0 --device cpu" + out), 2);
  EXPECT_NE(err_.find("cannot be combined with --device cpu"), std::string::npos) << err_;
  EXPECT_EQ(run("sample --device tpu" + out), 2);
  EXPECT_NE(err_.find("unknown --device 'tpu'"), std::string::npos) << err_;
  EXPECT_EQ(run("sample --device cpu --gpu-memory-limit 12" + out), 2);
  EXPECT_NE(err_.find("--gpu-memory-limit applies to GPU backends"), std::string::npos) << err_;
  EXPECT_EQ(run("sample --ranks 0" + out), 2);
  EXPECT_NE(err_.find("--ranks expects a positive integer"), std::string::npos) << err_;
  EXPECT_FALSE(std::filesystem::exists(path("x.safetensors")));
}

namespace {

// Starts a long 2- or 3-rank job, sends `signal` to world rank 1 once it runs, and
// returns the job's exit code; `seconds` receives how long the job took.
int disturb_rank(CliTest& t, const std::string& flags, int signal, double* seconds) {
  const std::string out = t.path("long.safetensors");
  const std::string job = t.binary() + " sample --width 256 --height 256 --frames 9 --steps 2000 " +
                          flags + " --out " + out;
  // Wait (up to 60 s: a loaded machine starts MPI slowly) until rank 1 exists and the job is
  // past start-up, then signal it. No rank 1 by then: the job is ended and the test fails at once
  // (exit 97) rather than waiting out 2000 steps.
  const std::string line =
      job + " & pid=$!; victim=; for i in $(seq 300); do "
      "for p in $(pgrep -f -- '--out " + out + "'); do "
      "if tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1; then victim=$p; fi; done; "
      "[ -n \"$victim\" ] && break; sleep 0.2; done; "
      "if [ -z \"$victim\" ]; then pkill -KILL -f -- '--out " + out + "'; wait $pid; exit 97; fi; "
      // Past MPI start-up (rank 0 has printed the model line), so the signal lands in the
      // sampling, not in the start-up that --timeout also bounds.
      "for i in $(seq 600); do grep -q '^model:' " + t.path("stderr.txt") + " && break; sleep 0.1; done; sleep 1; "
      "kill -" + std::to_string(signal) + " $victim; wait $pid";
  auto start = std::chrono::steady_clock::now();
  int rc = t.shell(line);
  EXPECT_NE(rc, 97) << "rank 1 of the job never appeared";
  *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return rc;
}

}  // namespace

// Whether a process of the disturbed job still runs ("[.]" keeps the pattern from matching
// the shell that runs pgrep).
bool Layouts::any_rank_left() const {
  const std::string pattern = path("long") + "[.]safetensors";
  return std::system(("pgrep -f -- '" + pattern + "' >/dev/null").c_str()) == 0;
}

TEST_F(Layouts, ARankThatDiesEndsTheJob) {
  double seconds = 0;
  int rc = disturb_rank(*this, "--ranks 3 --ring 3 --timeout 20", SIGKILL, &seconds);
  EXPECT_NE(rc, 0);
  EXPECT_LT(seconds, 20.0);
  EXPECT_NE(err_.find("rank 1"), std::string::npos) << err_;
  EXPECT_FALSE(std::filesystem::exists(path("long.safetensors")));
  EXPECT_FALSE(any_rank_left()) << "a rank outlived its job";
}

TEST_F(Layouts, AHungRankTimesOutWithAMessage) {
  double seconds = 0;
  int rc = disturb_rank(*this, "--ranks 2 --ulysses 2 --timeout 3", SIGSTOP, &seconds);
  EXPECT_NE(rc, 0);
  EXPECT_LT(seconds, 15.0);
  // Whichever collective rank 0 is in (all_to_all or all_gather), and whether it was
  // waiting to receive or for rank 1 to take its data, the message names the group and rank 1.
  const std::string head = "in group 'ulysses' (ranks 0,1) timed out after 3 s; ";
  EXPECT_TRUE(err_.find(head + "no data from rank(s) 1") != std::string::npos ||
              err_.find(head + "rank(s) 1 did not take this rank's data") != std::string::npos)
      << err_;
  EXPECT_FALSE(any_rank_left()) << "a rank outlived its job";
}
