// `raylight serve` on two CPU ranks (through mpirun, as users start it): layouts chosen per
// load request give the same latents as one rank, cancellation stops both ranks together,
// and a rank that dies ends the server without leaving a process behind.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "backend/backend.h"
#include "models/t5/umt5_encoder.h"
#include "test_server_support.h"
#include "../part_loaders.h"

using namespace server_test;
using raylight::Tensor;

namespace {

const nlohmann::json kSmall = {{"width", 64}, {"height", 64}, {"frames", 5}, {"steps", 4}};

nlohmann::json with(nlohmann::json base, const nlohmann::json& extra) {
  for (const auto& [k, v] : extra.items()) base[k] = v;
  return base;
}

float max_diff(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined() || a.shape() != b.shape()) return INFINITY;
  float m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(a.f32()[i] - b.f32()[i]));
  return m;
}

}  // namespace

class ServerRanks : public ::testing::Test {
 public:
  void SetUp() override { dir_ = make_temp_dir("server_ranks"); }
  void TearDown() override {
    server_.kill_all();
    EXPECT_TRUE(server_.survivors().empty()) << "a rank outlived the server";
    std::filesystem::remove_all(dir_);
  }

 protected:
  Reply load(const std::string& json) { return http(server_.port(), "POST", "/v1/models/load?wait=1", json); }
  Tensor sample(const nlohmann::json& params) { return sample_on(server_.port(), params); }
  static Tensor sample_on(int port, const nlohmann::json& params) {
    Reply r = http(port, "POST", "/v1/sample?wait=1", sample_body(params));
    EXPECT_EQ(r.status, 200) << r.body;
    return latent_of(r.body);
  }
  std::string dir_;
  ServerProcess server_;
};

TEST_F(ServerRanks, LayoutsChosenPerLoadMatchOneRank) {
  server_.start(dir_, {"--ranks", "2", "--timeout", "60"});
  ASSERT_TRUE(server_.wait_ready()) << server_.log();
  Reply mem = http(server_.port(), "GET", "/v1/memory");
  ASSERT_EQ(mem.json()["ranks"].size(), 2u) << mem.body;
  EXPECT_NE(mem.json()["ranks"][0]["pid"], mem.json()["ranks"][1]["pid"]);

  const Tensor ref3 = cli_sample(dir_, "--width 64 --height 64 --frames 5 --steps 4 --seed 3", "ref3");
  const Tensor ref4 = cli_sample(dir_, "--width 64 --height 64 --frames 5 --steps 4 --seed 4", "ref4");
  ASSERT_TRUE(ref3.defined() && ref4.defined());
  struct Case {
    const char* load;
    float tolerance;
  } cases[] = {
      {R"({"model":"tiny","ulysses":2})", 0.0f},
      {R"({"model":"tiny","cfg_parallel":true})", 0.0f},
      {R"({"model":"tiny","ulysses":2,"fsdp":true})", 0.0f},
      {R"({"model":"tiny","ring":2})", 1e-4f},
  };
  for (const Case& c : cases) {
    Reply l = load(c.load);
    ASSERT_EQ(l.status, 200) << c.load << " -> " << l.body;
    EXPECT_LE(max_diff(sample(with(kSmall, {{"seed", 3}})), ref3), c.tolerance) << c.load;
  }
  // Data parallel: a batch of two is split over the two groups (seeds 3 and 4).
  ASSERT_EQ(load(R"({"model":"tiny","dp":2})").status, 200);
  Tensor both = sample(with(kSmall, {{"seed", 3}, {"batch", 2}}));
  ASSERT_EQ(both.shape(), (raylight::Shape{2, 16, 2, 8, 8}));
  EXPECT_EQ(max_diff(both.slice_rows(0, 1).reshape(ref3.shape()), ref3), 0.0f);
  EXPECT_EQ(max_diff(both.slice_rows(1, 2).reshape(ref4.shape()), ref4), 0.0f);
  // Three items on two groups: the second round has one item, the other group idles along.
  Tensor three = sample(with(kSmall, {{"seed", 3}, {"batch", 3}}));
  ASSERT_EQ(three.shape(), (raylight::Shape{3, 16, 2, 8, 8}));
  EXPECT_EQ(max_diff(three.slice_rows(0, 1).reshape(ref3.shape()), ref3), 0.0f);
  // With FSDP the idle group still gathers with the busy one: the same three items.
  ASSERT_EQ(load(R"({"model":"tiny","dp":2,"fsdp":true})").status, 200);
  EXPECT_EQ(max_diff(sample(with(kSmall, {{"seed", 3}, {"batch", 3}})), three), 0.0f);

  // Layouts that do not fit two ranks or the model are refused and change nothing.
  for (const char* bad : {R"({"model":"tiny","ulysses":3})", R"({"model":"tiny","ulysses":1})",
                          R"({"model":"tiny","dp":4})"}) {
    Reply r = http(server_.port(), "POST", "/v1/models/load", bad);
    EXPECT_EQ(r.status, 400) << bad << " -> " << r.body;
  }
  EXPECT_EQ(http(server_.port(), "GET", "/v1/models").json()["model"]["layout"]["dp"], 2);
  ASSERT_EQ(load(R"({"model":"tiny","cfg_parallel":true})").status, 200);
  Reply nocfg = http(server_.port(), "POST", "/v1/sample", sample_body(with(kSmall, {{"cfg", 1}})));
  EXPECT_EQ(nocfg.status, 400) << nocfg.body;
  EXPECT_NE(nocfg.body.find("cfg_parallel"), std::string::npos);
  EXPECT_EQ(server_.stop(), 0) << server_.log();
}

TEST_F(ServerRanks, CancelStopsEveryRankTogether) {
  server_.start(dir_, {"--ranks", "2", "--timeout", "60", "--model", "tiny", "--ulysses", "2"});
  ASSERT_TRUE(server_.wait_ready()) << server_.log();
  ASSERT_TRUE(wait_model(server_.port())) << server_.log();
  Reply sub = http(server_.port(), "POST", "/v1/sample", sample_body(with(kSmall, {{"steps", 5000}})));
  ASSERT_EQ(sub.status, 202) << sub.body;
  const std::string id = sub.json()["id"];
  auto events = follow_events(server_.port(), id, [&](const nlohmann::json& s) {
    if (s["step"].get<int>() >= 2 && !s.contains("cancelling"))
      http(server_.port(), "POST", "/v1/jobs/" + id + "/cancel");
    return true;
  });
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["state"], "cancelled");
  // Both ranks are ready for the next job, with the same model.
  EXPECT_EQ(max_diff(sample(with(kSmall, {{"seed", 3}})),
                     cli_sample(dir_, "--width 64 --height 64 --frames 5 --steps 4 --seed 3", "ref3")),
            0.0f);
  // Prompt to latent: rank 0 encodes the prompts and hands the embeddings to rank 1.
  auto backend = raylight::make_cpu_backend();
  auto t5 = raylight::test::load_umt5("tiny", *backend);
  Reply direct = http(server_.port(), "POST", "/v1/sample?wait=1",
                      sample_body(with(kSmall, {{"seed", 5}}),
                                  {{"context", t5->encode_prompt("two ranks")}, {"negative", t5->encode_prompt("")}}));
  Reply gen = http(server_.port(), "POST", "/v1/generate?wait=1",
                   with(kSmall, {{"seed", 5}, {"prompt", "two ranks"}, {"format", "latent"}}).dump());
  ASSERT_EQ(gen.status, 200) << gen.body;
  EXPECT_EQ(max_diff(latent_of(gen.body), latent_of(direct.body)), 0.0f);
  EXPECT_EQ(server_.stop(), 0) << server_.log();
}

TEST_F(ServerRanks, ARankThatDiesEndsTheServer) {
  server_.start(dir_, {"--ranks", "2", "--timeout", "10", "--model", "tiny", "--ulysses", "2"});
  ASSERT_TRUE(server_.wait_ready()) << server_.log();
  ASSERT_TRUE(wait_model(server_.port())) << server_.log();
  nlohmann::json ranks = http(server_.port(), "GET", "/v1/memory").json()["ranks"];
  ASSERT_EQ(ranks.size(), 2u);
  const pid_t victim = ranks[1]["pid"].get<int>();
  server_.remember_tree();
  Reply sub = http(server_.port(), "POST", "/v1/sample", sample_body(with(kSmall, {{"steps", 5000}})));
  ASSERT_EQ(sub.status, 202) << sub.body;
  const std::string id = sub.json()["id"];
  auto t0 = Clock::now();
  bool killed = false;
  auto events = follow_events(server_.port(), id, [&](const nlohmann::json& s) {
    if (!killed && s["step"].get<int>() >= 1) {
      ::kill(victim, SIGKILL);
      killed = true;
    }
    return true;
  }, 60);
  EXPECT_TRUE(killed);
  // The event stream ends without a final state (the server went away) well before the
  // job could have finished, and the whole server exits with an error.
  ASSERT_FALSE(events.empty());
  EXPECT_NE(events.back()["state"], "succeeded");
  const int rc = server_.wait_exit(60);
  EXPECT_NE(rc, 0) << server_.log();
  EXPECT_NE(rc, -1) << "the server outlived its rank";
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 60.0);
  EXPECT_EQ(http(server_.port(), "GET", "/v1/health", "", {}, 5).status, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_TRUE(server_.survivors().empty()) << "a rank outlived the server";
  // Nothing points clients at the dead server.
  EXPECT_FALSE(std::filesystem::exists(server_.port_file())) << "the port file outlived the server";
}

// A rank that stops answering shows in /v1/health within seconds (not at the collective
// timeout), and no job is taken meanwhile; once it answers again, all is as before.
TEST_F(ServerRanks, HealthShowsARankThatDoesNotAnswer) {
  server_.start(dir_, {"--ranks", "2", "--timeout", "120", "--model", "tiny", "--ulysses", "2"});
  ASSERT_TRUE(server_.wait_ready()) << server_.log();
  ASSERT_TRUE(wait_model(server_.port())) << server_.log();
  const pid_t rank1 = http(server_.port(), "GET", "/v1/memory").json()["ranks"][1]["pid"].get<int>();
  ASSERT_EQ(::kill(rank1, SIGSTOP), 0);
  const auto t0 = Clock::now();
  Reply h;
  while (std::chrono::duration<double>(Clock::now() - t0).count() < 20) {
    h = http(server_.port(), "GET", "/v1/health", "", {}, 10);
    if (h.status == 503) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const double took = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_EQ(h.status, 503) << h.body;
  EXPECT_EQ(h.json().value("status", ""), "unresponsive") << h.body;
  EXPECT_LT(took, 8.0);
  Reply refused = http(server_.port(), "POST", "/v1/sample", sample_body(kSmall));
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_NE(refused.body.find("has not answered"), std::string::npos) << refused.body;
  ASSERT_EQ(::kill(rank1, SIGCONT), 0);
  Reply back;
  for (int i = 0; i < 50 && back.status != 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    back = http(server_.port(), "GET", "/v1/health", "", {}, 10);
  }
  EXPECT_EQ(back.status, 200) << back.body;
  EXPECT_EQ(back.json()["status"], "ok");
  EXPECT_TRUE(latent_of(http(server_.port(), "POST", "/v1/sample?wait=1", sample_body(kSmall)).body).defined());
  EXPECT_EQ(server_.stop(), 0) << server_.log();
}

// Between-block cancellation on ranks that run a forward together (Ulysses 2): both stop
// after the same block - about a quarter of a step at cfg 5 - and are ready for the next job.
// Under CFG parallel, where rank 1 runs its forward alone and learns of the cancel from rank
// 0's notice, the job ends cancelled and no notice is left over for the next job.
TEST_F(ServerRanks, CancelBetweenBlocksStopsEveryRankTogether) {
  for (const char* layout : {"--ulysses", "--cfg-parallel"}) {
    SCOPED_TRACE(layout);
    // Timed under Ulysses (steps of seconds); under CFG parallel only the outcome counts.
    const int side = std::string(layout) == "--ulysses" ? 768 : 384;
    const nlohmann::json big = {{"width", side}, {"height", side}, {"frames", 1}, {"cfg", 5}};
    ServerProcess server;
    std::vector<std::string> args = {"--ranks", "2", "--timeout", "120", "--model", "tiny", layout};
    if (std::string(layout) == "--ulysses") args.push_back("2");
    server.start(dir_, args);
    ASSERT_TRUE(server.wait_ready()) << server.log();
    ASSERT_TRUE(wait_model(server.port())) << server.log();
    const int port = server.port();
    const auto t_step = Clock::now();
    ASSERT_EQ(http(port, "POST", "/v1/sample?wait=1", sample_body(with(big, {{"steps", 1}}))).status, 200);
    const double step_s = std::chrono::duration<double>(Clock::now() - t_step).count();
    for (int round = 0; round < 2; ++round) {  // twice: a settled notice does not cancel the next job
      Reply sub = http(port, "POST", "/v1/sample", sample_body(with(big, {{"steps", 3}})));
      ASSERT_EQ(sub.status, 202) << sub.body;
      const std::string id = sub.json()["id"];
      Clock::time_point asked{};
      auto events = follow_events(port, id, [&](const nlohmann::json& s) {
        if (s["state"] == "running" && asked == Clock::time_point{}) {
          // Into the first forward (the step starts right after "running"), as a user would.
          std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(150 * step_s)));
          asked = Clock::now();
          http(port, "POST", "/v1/jobs/" + id + "/cancel");
        }
        return true;
      });
      const double took = std::chrono::duration<double>(Clock::now() - asked).count();
      ASSERT_FALSE(events.empty());
      EXPECT_EQ(events.back()["state"], "cancelled");
      if (std::string(layout) == "--ulysses")
        EXPECT_LT(took, 0.6 * step_s) << "cancel took " << took << " s; one step takes " << step_s << " s";
      EXPECT_EQ(max_diff(sample_on(port, with(kSmall, {{"seed", 3}, {"cfg", 5}})),
                         cli_sample(dir_, "--width 64 --height 64 --frames 5 --steps 4 --seed 3 --cfg 5", "ref_cfg")),
                0.0f);
    }
    EXPECT_EQ(server.stop(), 0) << server.log();
    EXPECT_TRUE(server.survivors().empty());
  }
}
