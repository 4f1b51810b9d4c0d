// Two-expert models (Wan 2.2 A14B): the high-noise expert predicts while 1000*sigma is at or
// above the pair's boundary, then the low-noise one, each with its own guidance. A tiny pair
// (the tiny Wan DiT, the low expert's weights perturbed) names itself through the
// raylight.expert metadata; the sampled latents are checked against an Euler loop written
// here from the two networks, and every parallel layout and placement against one rank.
#include <cmath>

#include "cli_runner.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "models/wan/wan_tiny.h"
#include "pipeline/model_loader.h"
#include "pipeline/sample_job.h"
#include "sampling/noise.h"
#include "sampling/schedule.h"
#include "test_server_support.h"

using namespace raylight;

namespace {

constexpr double kBoundary = 700.0;

std::string expert_card(const char* role) {
  return std::string("{\"role\": \"") + role + "\", \"pair\": \"tiny pair\", \"boundary\": 700, " +
         "\"cfg_high\": 4, \"cfg_low\": 2.5}";
}

// The tiny DiT's tensors; the low-noise expert's are moved by 0.05 of noise so the two differ.
std::vector<std::pair<std::string, Tensor>> expert_tensors(bool high) {
  auto w = wan_tiny_weights();
  std::vector<std::pair<std::string, Tensor>> out;
  uint64_t seed = 1000;
  for (const auto& [name, t] : w->tensors()) {
    Tensor c = t.to_f32().clone();
    if (!high) {
      Tensor n = gaussian_noise(c.shape(), seed++);
      for (int64_t i = 0; i < c.numel(); ++i) c.f32()[i] += 0.05f * n.f32()[i];
    }
    out.emplace_back(name, c);
  }
  return out;
}

class TwoExperts : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    auto meta = wan_tiny_weights()->metadata();
    for (bool high : {true, false}) {
      meta["raylight.expert"] = expert_card(high ? "high" : "low");
      write_safetensors(path(high ? "pair_high_noise.safetensors" : "pair_low_noise.safetensors"),
                        expert_tensors(high), meta);
    }
    high_ = path("pair_high_noise.safetensors");
    low_ = path("pair_low_noise.safetensors");
  }
  Tensor sample(const std::string& extra, const std::string& name) {
    const std::string out = path(name + ".safetensors");
    EXPECT_EQ(run("sample --model " + high_ + " --model-low " + low_ +
                  " --steps 6 --width 80 --height 48 --frames 5 " + extra + " --out " + out),
              0)
        << extra << "\n"
        << err_;
    return SafetensorsFile::open(out)->tensor("latent").to_f32();
  }
  static float max_diff(const Tensor& a, const Tensor& b) {
    EXPECT_EQ(a.numel(), b.numel());
    float m = 0;
    for (int64_t i = 0; i < a.numel() && i < b.numel(); ++i) m = std::max(m, std::fabs(a.f32()[i] - b.f32()[i]));
    return m;
  }
  std::string high_, low_;
};

}  // namespace

TEST_F(TwoExperts, TheHighExpertRunsAboveTheBoundaryThenTheLowOne) {
  LoadedModel m = load_model(high_);
  add_low_noise_expert(m, low_);
  ASSERT_TRUE(m.low_noise);
  std::vector<int> ran;  // per model evaluation: 0 high, 1 low (recorded at block 0)
  m.denoiser->set_block_hook([&](int block) { if (block == 0) ran.push_back(0); });
  m.low_noise->denoiser->set_block_hook([&](int block) { if (block == 0) ran.push_back(1); });

  SampleOptions o = sample_defaults(*m.spec);
  EXPECT_EQ(o.cfg, 4.0);
  ASSERT_TRUE(o.cfg_low);
  EXPECT_EQ(*o.cfg_low, 2.5);
  o.size = {80, 48, 5};
  o.steps = 8;
  o.sampler = SamplerKind::Euler;
  o.seed = 3;
  const SampleJob job =
      make_sample_job(*m.spec, o, m.spec->builtin_conditioning(0), m.spec->builtin_conditioning(1));
  const Tensor got = run_sample_job(m, job);

  // The same schedule by hand: Euler steps x += (s' - s) v with each expert's guidance.
  int high_steps = 0;
  for (int i = 0; i < job.steps(); ++i) high_steps += 1000.0 * job.sigmas[i] >= kBoundary;
  ASSERT_GT(high_steps, 0);
  ASSERT_LT(high_steps, job.steps());
  std::vector<int> expected;
  for (int i = 0; i < job.steps(); ++i) expected.insert(expected.end(), 2, i < high_steps ? 0 : 1);
  EXPECT_EQ(ran, expected);

  auto cond_h = m.denoiser->prepare(job.positive), uncond_h = m.denoiser->prepare(job.negative);
  auto cond_l = m.low_noise->denoiser->prepare(job.positive), uncond_l = m.low_noise->denoiser->prepare(job.negative);
  Tensor x = gaussian_noise(job.item_shape, 3);
  for (int i = 0; i < job.steps(); ++i) {
    const bool high = i < high_steps;
    Denoiser& d = high ? *m.denoiser : *m.low_noise->denoiser;
    const double t = 1000.0 * job.sigmas[i], cfg = high ? 4.0 : 2.5;
    Tensor p = d.predict(x, t, high ? *cond_h : *cond_l);
    Tensor u = d.predict(x, t, high ? *uncond_h : *uncond_l);
    for (int64_t k = 0; k < x.numel(); ++k) {
      const double v = u.f32()[k] + cfg * (static_cast<double>(p.f32()[k]) - u.f32()[k]);
      x.f32()[k] = static_cast<float>(x.f32()[k] + (job.sigmas[i + 1] - job.sigmas[i]) * v);
    }
  }
  ASSERT_EQ(got.shape(), x.shape());
  EXPECT_LT(max_diff(got, x), 1e-5f);

  // Either expert alone gives something else: the switch matters.
  LoadedModel alone = load_model(high_);
  EXPECT_GT(max_diff(run_sample_job(alone, job), got), 1e-3f);
}

TEST_F(TwoExperts, EveryLayoutAndPlacementMatchesOneRank) {
  const Tensor ref = sample("", "ref");
  struct Case { const char* flags; bool exact; };
  const Case cases[] = {
      {"--ranks 2 --cfg-parallel", true},  {"--ranks 2 --ulysses 2", true}, {"--ranks 2 --fsdp", true},
      {"--offload", true},                 {"--ranks 2 --ring 2", false},   {"--ranks 4 --cfg-parallel --fsdp --ulysses 2", true},
  };
  for (const auto& c : cases) {
    const Tensor got = sample(c.flags, "got");
    ASSERT_EQ(got.shape(), ref.shape()) << c.flags;
    if (c.exact) EXPECT_EQ(max_diff(got, ref), 0.0f) << c.flags;
    else EXPECT_LT(max_diff(got, ref), 1e-4f) << c.flags;
  }
  // --cfg alone sets both experts' guidance; --cfg-low the low one's.
  EXPECT_GT(max_diff(sample("--cfg 2.5", "both"), ref), 1e-4f);
  EXPECT_EQ(max_diff(sample("--cfg 4 --cfg-low 2.5", "given"), ref), 0.0f);
}

TEST_F(TwoExperts, ThePartnerIsFoundBesideTheHighExpertByName) {
  const std::string out = path("auto.safetensors");
  ASSERT_EQ(run("sample --model " + high_ + " --steps 2 --width 80 --height 48 --frames 5 --out " + out), 0) << err_;
  const Tensor a = SafetensorsFile::open(out)->tensor("latent").to_f32();
  const Tensor b = sample("--steps 2", "given");
  EXPECT_EQ(max_diff(a, b), 0.0f);
}

TEST_F(TwoExperts, MismatchedPairsAreRefusedBeforeLoading) {
  // The low expert alone, or named as the high one.
  std::filesystem::rename(low_, path("lonely.safetensors"));
  EXPECT_NE(run("sample --model " + high_ + " --steps 2"), 0);
  EXPECT_NE(err_.find("give the low-noise one with --model-low"), std::string::npos) << err_;
  EXPECT_NE(run("sample --model " + path("lonely.safetensors") + " --model-low " + high_ + " --steps 2"), 0);
  EXPECT_NE(err_.find("give the high-noise one as --model"), std::string::npos) << err_;
  // Two high experts, and a one-model family given a partner or a low guidance.
  EXPECT_NE(run("sample --model " + high_ + " --model-low " + high_ + " --steps 2"), 0);
  EXPECT_NE(err_.find("is not the low-noise expert of tiny pair"), std::string::npos) << err_;
  EXPECT_NE(run("sample --model tiny --model-low " + path("lonely.safetensors") + " --steps 2"), 0);
  EXPECT_NE(err_.find("is one model; --model-low"), std::string::npos) << err_;
  EXPECT_NE(run("sample --model tiny --cfg-low 3 --steps 2"), 0);
  EXPECT_NE(err_.find("is one model"), std::string::npos) << err_;
  // A pair of another name.
  auto meta = wan_tiny_weights()->metadata();
  meta["raylight.expert"] = "{\"role\": \"low\", \"pair\": \"other pair\", \"boundary\": 700}";
  write_safetensors(path("other.safetensors"), expert_tensors(false), meta);
  EXPECT_NE(run("sample --model " + high_ + " --model-low " + path("other.safetensors") + " --steps 2"), 0);
  EXPECT_NE(err_.find("is not the low-noise expert of tiny pair"), std::string::npos) << err_;
  // Metadata that is not a role.
  for (const char* bad : {"[]", "{\"role\": \"middle\", \"pair\": \"p\", \"boundary\": 1}",
                          "{\"role\": \"low\", \"pair\": \"p\", \"boundary\": 1e9}",
                          "{\"role\": \"low\", \"pair\": \"p\"}", "{\"role\": \"low\", \"pair\": \"p\", \"boundary\": 5, \"x\": 1}"}) {
    meta["raylight.expert"] = bad;
    write_safetensors(path("bad.safetensors"), expert_tensors(false), meta);
    EXPECT_NE(run("inspect " + path("bad.safetensors")), 0) << bad;
    EXPECT_NE(err_.find("raylight.expert"), std::string::npos) << bad << "\n" << err_;
  }
}

TEST(WanExperts, TheWan22NamesSampleAsAPairWithTheOfficialSettings) {
  // Wan 2.1 14B and the Wan 2.2 A14B experts have the same tensors; the name decides.
  const std::vector<BenchModel> models = bench_models();
  const BenchModel* bench = nullptr;
  for (const auto& b : models)
    if (b.name == "wan-14b") bench = &b;
  ASSERT_NE(bench, nullptr);
  // A header without data: the spec reads names and shapes only.
  class Headers final : public WeightStore {
   public:
    explicit Headers(const BenchModel& b) : b_(b) {}
    bool has(const std::string& n) const override { return find(n) != nullptr; }
    Shape shape(const std::string& n) const override { return *find(n); }
    DType stored_dtype(const std::string&) const override { return DType::BF16; }
    std::vector<std::string> names() const override {
      std::vector<std::string> out;
      for (const auto& t : b_.tensors) out.push_back(t.first);
      return out;
    }
    std::map<std::string, std::string> metadata() const override { return b_.metadata; }
    Stored stored(const std::string& n) const override { throw std::runtime_error("no data for " + n); }

   private:
    const Shape* find(const std::string& n) const {
      for (const auto& t : b_.tensors)
        if (t.first == n) return &t.second;
      return nullptr;
    }
    const BenchModel& b_;
  } headers(*bench);
  const auto high = denoiser_spec(headers, "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors");
  const auto low = denoiser_spec(headers, "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors");
  const auto old = denoiser_spec(headers, "wan2.1_t2v_14B_bf16.safetensors");
  ASSERT_TRUE(high->expert() && low->expert());
  EXPECT_TRUE(high->expert()->high_noise);
  EXPECT_FALSE(low->expert()->high_noise);
  EXPECT_EQ(high->expert()->boundary, 875.0);
  EXPECT_EQ(high->family(), "Wan 2.2");
  EXPECT_EQ(high->defaults().steps, 40);
  EXPECT_EQ(high->defaults().shift, 12.0);
  EXPECT_EQ(high->defaults().cfg, 4.0);
  EXPECT_EQ(low->defaults().cfg, 3.0);
  EXPECT_FALSE(old->expert());
  EXPECT_EQ(old->family(), "Wan 2.1");
}

TEST_F(TwoExperts, TheServerLoadsThePairAndSamplesAsTheCommandLine) {
  server_test::ServerProcess server;
  server.start(dir_.string(), {"--model", "tiny"});
  ASSERT_TRUE(server.wait_ready() && server_test::wait_model(server.port())) << server.log();
  const int port = server.port();
  // A partner that is not the pair's low-noise expert is refused and the model stays.
  server_test::Reply bad = server_test::http(port, "POST", "/v1/models/load?wait=1",
                                             nlohmann::json{{"model", high_}, {"model_low", high_}}.dump());
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_NE(bad.body.find("is not the low-noise expert of tiny pair"), std::string::npos) << bad.body;
  server_test::Reply load = server_test::http(port, "POST", "/v1/models/load?wait=1",
                                              nlohmann::json{{"model", high_}, {"model_low", low_}}.dump());
  ASSERT_EQ(load.status, 200) << load.body;
  const nlohmann::json params = {{"width", 80}, {"height", 48}, {"frames", 5}, {"steps", 6}, {"seed", 0}};
  server_test::Reply r = server_test::http(port, "POST", "/v1/sample?wait=1", server_test::sample_body(params));
  ASSERT_EQ(r.status, 200) << r.body;
  const Tensor got = server_test::latent_of(r.body);
  ASSERT_TRUE(got.defined());
  EXPECT_EQ(max_diff(got.to_f32(), sample("", "cli")), 0.0f);
  // The low expert's guidance travels as cfg_low.
  nlohmann::json low_cfg = params;
  low_cfg["cfg_low"] = 1.5;
  server_test::Reply other =
      server_test::http(port, "POST", "/v1/sample?wait=1", server_test::sample_body(low_cfg));
  ASSERT_EQ(other.status, 200) << other.body;
  EXPECT_GT(max_diff(server_test::latent_of(other.body).to_f32(), got.to_f32()), 1e-4f);
  EXPECT_EQ(server.stop(), 0) << server.log();
}

namespace {

// A rank-4 LoRA on two of the tiny DiT's matrices (kohya names), large enough to move the result.
void write_tiny_lora(const std::string& file, uint64_t seed) {
  std::vector<std::pair<std::string, Tensor>> t;
  const int64_t dim = wan_tiny_weights()->shape("blocks.0.self_attn.q.weight")[0];
  for (const char* stem : {"diffusion_model.blocks.0.self_attn.q", "diffusion_model.blocks.1.ffn.2"}) {
    const bool ffn = std::string(stem).find("ffn") != std::string::npos;
    const int64_t in = ffn ? wan_tiny_weights()->shape("blocks.1.ffn.2.weight")[1] : dim;
    Tensor down = gaussian_noise({4, in}, seed++), up = gaussian_noise({dim, 4}, seed++);
    for (Tensor* x : {&down, &up})
      for (int64_t i = 0; i < x->numel(); ++i) x->f32()[i] *= 0.3f;
    t.emplace_back(std::string(stem) + ".lora_down.weight", down);
    t.emplace_back(std::string(stem) + ".lora_up.weight", up);
  }
  write_safetensors(file, t, {});
}

}  // namespace

TEST_F(TwoExperts, EachExpertTakesItsOwnLoras) {
  const std::string lora = path("tiny_lora.safetensors");
  write_tiny_lora(lora, 77);
  const Tensor ref = sample("", "ref");
  const Tensor low = sample("--lora-low " + lora + ":0.7", "low");
  const Tensor high = sample("--lora " + lora + ":0.7", "high");
  EXPECT_GT(max_diff(low, ref), 1e-4f);
  EXPECT_GT(max_diff(high, ref), 1e-4f);
  EXPECT_GT(max_diff(high, low), 1e-4f);
  // --lora-low changes the low-noise expert alone: the same as a low expert file with the
  // LoRA merged in (by the library's merge, so this checks where the LoRA goes).
  {
    DenoiserWeights d = as_denoiser(open_store(low_, PartKind::Denoiser), low_);
    std::shared_ptr<WeightStore> base(std::move(d.weights));
    LoadedModel m = load_model(high_);
    add_low_noise_expert(m, low_, "", LoraOptions{{{lora, 0.7}}, false, false});
    std::vector<std::pair<std::string, Tensor>> merged;
    for (const auto& name : m.low_noise->weights->names()) {
      const WeightStore::Stored s = m.low_noise->weights->stored(name);
      Tensor v = s.bytes.to_f32().clone();
      for (int64_t i = 0; i < v.numel(); ++i) v.f32()[i] *= s.scale;
      merged.emplace_back(name, v);
    }
    auto meta = base->metadata();
    write_safetensors(path("merged_low_noise.safetensors"), merged, meta);
    const std::string out = path("merged.safetensors");
    ASSERT_EQ(run("sample --model " + high_ + " --model-low " + path("merged_low_noise.safetensors") +
                  " --steps 6 --width 80 --height 48 --frames 5 --out " + out),
              0)
        << err_;
    EXPECT_EQ(max_diff(SafetensorsFile::open(out)->tensor("latent").to_f32(), low), 0.0f);
  }
  // Every placement applies it alike.
  for (const char* flags : {"--ranks 2 --fsdp", "--offload", "--ranks 2 --cfg-parallel"})
    EXPECT_EQ(max_diff(sample(std::string(flags) + " --lora-low " + lora + ":0.7", "placed"), low), 0.0f) << flags;
  // A one-model family takes no low-noise LoRA.
  EXPECT_NE(run("sample --model tiny --lora-low " + lora + " --steps 2"), 0);
  EXPECT_NE(err_.find("--lora-low are for two-expert models"), std::string::npos) << err_;

  // The server: "loras_low" at load, then POST /v1/models/loras replacing both lists.
  server_test::ServerProcess server;
  server.start(dir_.string(), {"--model", "tiny"});
  ASSERT_TRUE(server.wait_ready() && server_test::wait_model(server.port())) << server.log();
  const int port = server.port();
  const nlohmann::json entry = {{{"path", lora}, {"strength", 0.7}}};
  server_test::Reply bad = server_test::http(port, "POST", "/v1/models/load?wait=1",
                                             nlohmann::json{{"model", high_}, {"loras_low", entry}}.dump());
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_NE(bad.body.find("\\\"loras_low\\\" is for the low-noise expert"), std::string::npos) << bad.body;
  server_test::Reply load = server_test::http(
      port, "POST", "/v1/models/load?wait=1",
      nlohmann::json{{"model", high_}, {"model_low", low_}, {"loras_low", entry}}.dump());
  ASSERT_EQ(load.status, 200) << load.body;
  const nlohmann::json params = {{"width", 80}, {"height", 48}, {"frames", 5}, {"steps", 6}, {"seed", 0}};
  auto sampled = [&] {
    server_test::Reply r = server_test::http(port, "POST", "/v1/sample?wait=1", server_test::sample_body(params));
    EXPECT_EQ(r.status, 200) << r.body;
    return server_test::latent_of(r.body).to_f32();
  };
  EXPECT_EQ(max_diff(sampled(), low), 0.0f);
  server_test::Reply swap = server_test::http(port, "POST", "/v1/models/loras?wait=1",
                                              nlohmann::json{{"loras", entry}}.dump());
  ASSERT_EQ(swap.status, 200) << swap.body;
  EXPECT_EQ(max_diff(sampled(), high), 0.0f);
  server_test::Reply none = server_test::http(port, "POST", "/v1/models/loras?wait=1",
                                              nlohmann::json{{"loras", nlohmann::json::array()}}.dump());
  ASSERT_EQ(none.status, 200) << none.body;
  EXPECT_EQ(max_diff(sampled(), ref), 0.0f);  // removed == never applied, bit for bit
  EXPECT_EQ(server.stop(), 0) << server.log();
}

TEST_F(TwoExperts, TwoPartsOfTheStepsEqualOneRunAsKSamplerAdvancedSplitsThem) {
  // ComfyUI's split: the high-noise expert for steps [0, K] returning its leftover noise, the
  // low-noise one from K on continuing that sample without new noise. With K where the pair
  // switches and Euler, the two commands give the one run's latent bit for bit.
  const std::vector<double> sigmas = flow_sigmas(6, 5.0);
  int k = 0;
  while (1000.0 * sigmas[k] >= kBoundary) ++k;
  ASSERT_GT(k, 0);
  ASSERT_LT(k, 6);
  const std::string common = "--sampler euler --seed 4 --shift 5 ";
  const Tensor full = sample(common, "full");
  const Tensor high = sample(common + "--end-step " + std::to_string(k) + " --leftover-noise --expert high", "high");
  const Tensor low = sample(common + "--start-step " + std::to_string(k) + " --latent " + path("high.safetensors") +
                                " --expert low",
                            "low");
  EXPECT_EQ(max_diff(low, full), 0.0f);
  EXPECT_GT(max_diff(high, full), 0.1f);  // the first part stops with noise left
  // The low expert over the first part is another sample: the expert named is the one run.
  const Tensor wrong = sample(common + "--end-step " + std::to_string(k) + " --leftover-noise --expert low", "wrong");
  EXPECT_GT(max_diff(wrong, high), 1e-3f);
  // Without --leftover-noise the part ends at sigma 0; a start past the end, or a latent of
  // another shape, is refused by name.
  EXPECT_GT(max_diff(sample(common + "--end-step " + std::to_string(k), "clean"), high), 0.1f);
  EXPECT_NE(run("sample --model " + high_ + " --model-low " + low_ + " --steps 6 --width 80 --height 48 --frames 5 " +
                common + "--start-step 6 --latent " + path("high.safetensors") + " --out " + path("x.safetensors")),
            0);
  EXPECT_NE(err_.find("leaves no step"), std::string::npos) << err_;
  EXPECT_NE(run("sample --model " + high_ + " --model-low " + low_ + " --steps 6 --width 96 --height 48 --frames 5 " +
                common + "--start-step 3 --latent " + path("high.safetensors") + " --out " + path("x.safetensors")),
            0);
  EXPECT_NE(err_.find("--latent"), std::string::npos) << err_;
}
