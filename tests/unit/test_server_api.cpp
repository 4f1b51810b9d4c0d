// The HTTP API against a real `raylight serve` (one rank, the tiny model) started by the
// suite: loading, sampling (compared byte for byte with `raylight sample`), caller noise,
// progress events, cancellation, two clients at once, and every kind of bad request.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "backend/backend.h"
#include "io/image/image_reader.h"
#include "io/image/image_writer.h"
#include "io/video/video_probe.h"
#include "models/t5/umt5_encoder.h"
#include "sampling/noise.h"
#include "sampling/schedule.h"
#include "test_server_support.h"
#include "../part_loaders.h"

using namespace server_test;
using raylight::Tensor;

namespace {

// Small and fast: 64x64 pixels, 5 frames -> latent [16, 2, 8, 8].
const nlohmann::json kSmall = {{"width", 64}, {"height", 64}, {"frames", 5}, {"steps", 4}};
const char* const kSmallFlags = "--width 64 --height 64 --frames 5 --steps 4";

nlohmann::json with(nlohmann::json base, const nlohmann::json& extra) {
  for (const auto& [k, v] : extra.items()) base[k] = v;
  return base;
}

}  // namespace

class ServerApi : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    dir_ = make_temp_dir("server_api");
    server_ = new ServerProcess();
    server_->start(dir_, {"--model", "tiny", "--idle-timeout", "2", "--max-body-mb", "4", "--max-queue", "8"});
    // The model loads as a queued job: wait for it too.
    ready_ = server_->wait_ready() && wait_model(server_->port());
  }
  static void TearDownTestSuite() {
    if (server_) EXPECT_EQ(server_->stop(), 0) << server_->log();
    if (server_) EXPECT_TRUE(server_->survivors().empty());
    delete server_;
    server_ = nullptr;
    std::filesystem::remove_all(dir_);
  }
  void SetUp() override { ASSERT_TRUE(ready_) << "server did not start:\n" << (server_ ? server_->log() : ""); }

 protected:
  static int port() { return server_->port(); }
  static Reply sample(const nlohmann::json& params, const std::vector<std::pair<std::string, Tensor>>& t = {}) {
    return http(port(), "POST", "/v1/sample?wait=1", sample_body(params, t));
  }
  static size_t job_count() { return http(port(), "GET", "/v1/jobs").json()["jobs"].size(); }

  static std::string dir_;
  static ServerProcess* server_;
  static bool ready_;
};

std::string ServerApi::dir_;
ServerProcess* ServerApi::server_ = nullptr;
bool ServerApi::ready_ = false;

TEST_F(ServerApi, HealthIndexModelsAndMemory) {
  Reply h = http(port(), "GET", "/v1/health");
  ASSERT_EQ(h.status, 200) << h.body;
  EXPECT_EQ(h.json()["status"], "ok");
  EXPECT_EQ(h.json()["ranks"], 1);
  EXPECT_EQ(h.json()["model"]["model"], "tiny");
  EXPECT_EQ(h.headers["content-type"], "application/json");
  Reply idx = http(port(), "GET", "/");
  EXPECT_EQ(idx.status, 200);
  EXPECT_NE(idx.body.find("POST /v1/sample"), std::string::npos);
  Reply m = http(port(), "GET", "/v1/memory");
  ASSERT_EQ(m.status, 200);
  ASSERT_EQ(m.json()["ranks"].size(), 1u) << m.body;
  EXPECT_EQ(m.json()["ranks"][0]["pid"], server_->pid());
  EXPECT_GT(m.json()["ranks"][0]["rss_bytes"].get<double>(), 0);
  Reply models = http(port(), "GET", "/v1/models");
  EXPECT_EQ(models.json()["model"]["layout"]["ulysses"], 1);
}

TEST_F(ServerApi, LoadRefusesBadRequestsAndKeepsTheModel) {
  const size_t jobs = job_count();
  struct Case {
    std::string body;
    int status;
    std::string words;
  } cases[] = {
      {R"({"model":"tiny","ulysses":2})", 400, "needs 2 ranks but the job has 1"},
      {R"({"model":"/no/such/model.safetensors"})", 400, "does not exist"},
      {R"({"model":"tiny","ulysess":1})", 400, "unknown field"},
      {R"({"model":"tiny",)", 400, "not valid JSON"},
      {R"([1,2])", 400, "JSON object"},
      {R"({})", 400, "\"model\" must name"},
  };
  for (const Case& c : cases) {
    Reply r = http(port(), "POST", "/v1/models/load", c.body);
    EXPECT_EQ(r.status, c.status) << c.body << " -> " << r.body;
    EXPECT_NE(r.json().value("error", "").find(c.words), std::string::npos) << r.body;
  }
  EXPECT_EQ(job_count(), jobs) << "a refused request created a job";
  EXPECT_EQ(http(port(), "GET", "/v1/models").json()["model"]["model"], "tiny");

  Reply un = http(port(), "POST", "/v1/models/unload?wait=1");
  ASSERT_EQ(un.status, 200) << un.body;
  EXPECT_TRUE(http(port(), "GET", "/v1/models").json()["model"].is_null());
  Reply none = sample(kSmall);
  EXPECT_EQ(none.status, 409) << none.body;
  EXPECT_NE(none.body.find("no model is loaded"), std::string::npos);
  Reply load = http(port(), "POST", "/v1/models/load?wait=1", R"({"model":"tiny","fsdp":true})");
  ASSERT_EQ(load.status, 200) << load.body;
  EXPECT_EQ(load.json()["fsdp"], true);
  EXPECT_EQ(load.json()["variant"], "Wan2.1 T2V custom (dim 128, 2 layers)");
  ASSERT_EQ(http(port(), "POST", "/v1/models/load?wait=1", R"({"model":"tiny"})").status, 200);
}

TEST_F(ServerApi, SampleMatchesTheCommandLine) {
  Reply r = sample(with(kSmall, {{"seed", 3}}));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["content-type"], "application/octet-stream");
  Tensor got = latent_of(r.body);
  ASSERT_TRUE(got.defined());
  EXPECT_EQ(got.shape(), (raylight::Shape{16, 2, 8, 8}));
  EXPECT_TRUE(same_bytes(got, cli_sample(dir_, std::string(kSmallFlags) + " --seed 3", "cli_seed3")));

  Reply r2 = sample(with(kSmall, {{"seed", 7}, {"cfg", 1}, {"sampler", "dpmpp2m"}}));
  ASSERT_EQ(r2.status, 200) << r2.body;
  EXPECT_TRUE(same_bytes(latent_of(r2.body),
                         cli_sample(dir_, std::string(kSmallFlags) + " --seed 7 --cfg 1 --sampler dpmpp2m", "cli_dpm")));
}

TEST_F(ServerApi, CallerNoiseSigmasAndDenoise) {
  Tensor reference = latent_of(sample(with(kSmall, {{"seed", 3}})).body);
  ASSERT_TRUE(reference.defined());
  const raylight::Shape item = {16, 2, 8, 8};
  // The seed's own noise, sent by the caller, gives the same latent; so do explicit sigmas.
  Reply r = sample({{"steps", 4}}, {{"noise", raylight::gaussian_noise(item, 3)}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(same_bytes(latent_of(r.body), reference));
  Reply s = sample({{"sigmas", raylight::flow_sigmas(4, 5.0)}}, {{"noise", raylight::gaussian_noise(item, 3)}});
  EXPECT_TRUE(same_bytes(latent_of(s.body), reference)) << s.body;
  // A batch of two noises: each item is sampled as if alone (fp16 input is accepted).
  Tensor both = Tensor::empty({2, 16, 2, 8, 8});
  Tensor n3 = raylight::gaussian_noise(item, 3), n4 = raylight::gaussian_noise(item, 4);
  std::memcpy(both.f32(), n3.f32(), n3.nbytes());
  std::memcpy(both.f32() + n3.numel(), n4.f32(), n4.nbytes());
  Reply b = sample({{"steps", 4}}, {{"noise", both}});
  ASSERT_EQ(b.status, 200) << b.body;
  Tensor out = latent_of(b.body);
  ASSERT_EQ(out.shape(), (raylight::Shape{2, 16, 2, 8, 8}));
  EXPECT_EQ(std::memcmp(out.f32(), reference.f32(), reference.nbytes()), 0);
  Tensor seed4 = latent_of(sample(with(kSmall, {{"seed", 4}})).body);
  EXPECT_EQ(std::memcmp(out.f32() + reference.numel(), seed4.f32(), seed4.nbytes()), 0);
  // denoise < 1 starts from the given latent: the result stays closer to it than a full run.
  Reply d = sample({{"steps", 4}, {"denoise", 0.25}, {"seed", 5}}, {{"latent", reference}});
  ASSERT_EQ(d.status, 200) << d.body;
  Tensor partial = latent_of(d.body);
  double near = 0, far = 0;
  Tensor full = latent_of(sample(with(kSmall, {{"seed", 5}})).body);
  for (int64_t i = 0; i < reference.numel(); ++i) {
    near += std::abs(partial.f32()[i] - reference.f32()[i]);
    far += std::abs(full.f32()[i] - reference.f32()[i]);
  }
  EXPECT_LT(near, far * 0.8);
}

TEST_F(ServerApi, ProgressEventsFollowEveryStep) {
  Reply sub = http(port(), "POST", "/v1/sample", sample_body(with(kSmall, {{"steps", 6}})));
  ASSERT_EQ(sub.status, 202) << sub.body;
  const std::string id = sub.json()["id"];
  EXPECT_EQ(sub.headers["location"], "/v1/jobs/" + id);
  std::vector<nlohmann::json> events = follow_events(port(), id);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["state"], "succeeded") << events.back().dump();
  EXPECT_EQ(events.back()["step"], 6);
  EXPECT_EQ(events.back()["total"], 6);
  int last = -1;
  for (const auto& e : events) {
    EXPECT_GE(e["step"].get<int>(), last);
    last = e["step"];
  }
  Reply st = http(port(), "GET", "/v1/jobs/" + id);
  EXPECT_EQ(st.json()["state"], "succeeded");
  EXPECT_EQ(st.json()["result"]["steps"], 6);
  Reply res = http(port(), "GET", "/v1/jobs/" + id + "/result");
  EXPECT_EQ(res.status, 200);
  EXPECT_TRUE(latent_of(res.body).defined());
  // A finished job's stream gives its final status at once.
  EXPECT_EQ(follow_events(port(), id).back()["state"], "succeeded");
}

TEST_F(ServerApi, CancelMidJobLeavesTheServerReady) {
  Reply sub = http(port(), "POST", "/v1/sample", sample_body(with(kSmall, {{"steps", 5000}})));
  ASSERT_EQ(sub.status, 202) << sub.body;
  const std::string id = sub.json()["id"];
  // A second job waits behind it; cancelling it takes effect at once.
  Reply queued = http(port(), "POST", "/v1/sample", sample_body(kSmall));
  ASSERT_EQ(queued.status, 202);
  EXPECT_EQ(queued.json()["state"], "queued");
  const std::string qid = queued.json()["id"];
  Reply qc = http(port(), "POST", "/v1/jobs/" + qid + "/cancel");
  EXPECT_EQ(qc.json()["state"], "cancelled") << qc.body;
  Reply early = http(port(), "GET", "/v1/jobs/" + id + "/result");
  EXPECT_EQ(early.status, 409) << early.body;

  auto t0 = Clock::now();
  std::vector<nlohmann::json> events = follow_events(port(), id, [&](const nlohmann::json& s) {
    if (s["state"] == "running" && s["step"].get<int>() >= 2 && !s.contains("cancelling"))
      EXPECT_EQ(http(port(), "DELETE", "/v1/jobs/" + id).status, 200);
    return true;
  });
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["state"], "cancelled") << events.back().dump();
  EXPECT_LT(events.back()["step"].get<int>(), 5000);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 60.0);
  Reply res = http(port(), "GET", "/v1/jobs/" + id + "/result");
  EXPECT_EQ(res.status, 409);
  EXPECT_NE(res.body.find("cancelled"), std::string::npos);
  // Ready for the next job.
  Reply after = sample(with(kSmall, {{"seed", 3}}));
  EXPECT_EQ(after.status, 200) << after.body;
  EXPECT_FALSE(http(port(), "GET", "/v1/health").json()["busy"]);
}

TEST_F(ServerApi, AFailedJobLeavesTheServerReady) {
  // Behind a queued load the request cannot be checked against the model yet, so it is
  // queued; it fails when it runs, with the same message, and the next job runs normally.
  Reply load = http(port(), "POST", "/v1/models/load", R"({"model":"tiny"})");
  ASSERT_EQ(load.status, 202) << load.body;
  Reply bad = http(port(), "POST", "/v1/sample", sample_body(kSmall, {{"context", Tensor::zeros({3, 65})}}));
  ASSERT_EQ(bad.status, 202) << bad.body;
  const std::string id = bad.json()["id"];
  Reply res = http(port(), "GET", "/v1/jobs/" + id + "/result?wait=1");
  EXPECT_EQ(res.status, 400) << res.body;
  EXPECT_NE(res.body.find("tensor 'context' has shape [3, 65]"), std::string::npos) << res.body;
  nlohmann::json st = http(port(), "GET", "/v1/jobs/" + id).json();
  EXPECT_EQ(st["state"], "failed");
  EXPECT_EQ(follow_events(port(), id).back()["state"], "failed");
  EXPECT_EQ(http(port(), "GET", "/v1/jobs/" + load.json()["id"].get<std::string>()).json()["state"], "succeeded");
  Reply ok = sample(with(kSmall, {{"seed", 3}}));
  EXPECT_EQ(ok.status, 200) << ok.body;
}

TEST_F(ServerApi, TwoClientsAtOnce) {
  Tensor want[2] = {latent_of(sample(with(kSmall, {{"seed", 11}})).body),
                    latent_of(sample(with(kSmall, {{"seed", 12}})).body)};
  Reply got[2];
  std::atomic<int> ready{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 2; ++i)
    clients.emplace_back([&, i] {
      ++ready;
      while (ready < 2) std::this_thread::yield();
      got[i] = sample(with(kSmall, {{"seed", 11 + i}, {"steps", 4}}));
    });
  for (auto& t : clients) t.join();
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(got[i].status, 200) << got[i].body;
    EXPECT_TRUE(same_bytes(latent_of(got[i].body), want[i])) << "client " << i;
  }
  // One job at a time: the two ran one after the other.
  nlohmann::json a = http(port(), "GET", "/v1/jobs/" + got[0].headers["x-raylight-job"]).json();
  nlohmann::json b = http(port(), "GET", "/v1/jobs/" + got[1].headers["x-raylight-job"]).json();
  const bool a_first = a["started"].get<double>() < b["started"].get<double>();
  const nlohmann::json& first = a_first ? a : b;
  const nlohmann::json& second = a_first ? b : a;
  EXPECT_LE(first["finished"].get<double>(), second["started"].get<double>());
}

TEST_F(ServerApi, MalformedRequestsAreRefusedAndChangeNothing) {
  const size_t jobs = job_count();
  Tensor bad_shape = Tensor::zeros({15, 2, 8, 8});
  std::string truncated = sample_body(kSmall, {{"noise", Tensor::zeros({16, 2, 8, 8})}});
  truncated.resize(truncated.size() - 10);
  struct Case {
    std::string method, target, body;
    int status;
    std::string words;
  } cases[] = {
      {"POST", "/v1/sample", "not safetensors at all", 400, "body:"},
      {"POST", "/v1/sample", truncated, 400, "truncated"},
      {"POST", "/v1/sample", sample_body(kSmall, {{"latnt", bad_shape}}), 400, "unknown tensor 'latnt'"},
      {"POST", "/v1/sample", sample_body({}, {{"latent", bad_shape}}), 400, "tensor 'latent' has shape [15, 2, 8, 8]"},
      {"POST", "/v1/sample", sample_body(with(kSmall, {{"sampler", "heun"}})), 400, "unknown sampler"},
      {"POST", "/v1/sample", "", 411, "safetensors body"},
      {"GET", "/v1/sample", "", 405, "method not allowed"},
      {"POST", "/v1/health", "", 405, "use GET"},
      {"GET", "/v1/nothing", "", 404, "no such endpoint"},
      {"GET", "/v1/jobs/0123456789abcdef0123456789abcdef", "", 404, "no job"},
      {"GET", "/v1/jobs/../../etc/passwd", "", 404, "no such endpoint"},
      {"POST", "/v1/models/unload", "{\"now\":true}", 400, "no parameters"},
      {"POST", "/v1/jobs/zz/cancel", "", 404, "no job"},
  };
  for (const Case& c : cases) {
    Reply r = http(port(), c.method, c.target, c.body);
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.target << " -> " << r.body;
    EXPECT_NE(r.json().value("error", "").find(c.words), std::string::npos) << r.body;
  }
  // Broken HTTP itself.
  EXPECT_EQ(parse_reply(raw_exchange(port(), "BREW /pot HTCPCP/1.0\r\n\r\n")).status, 400);
  EXPECT_EQ(parse_reply(raw_exchange(port(), "GET /v1/health HTTP/3\r\n\r\n")).status, 505);
  EXPECT_EQ(parse_reply(raw_exchange(port(), "POST /v1/sample HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")).status, 501);
  EXPECT_EQ(parse_reply(raw_exchange(port(), "POST /v1/sample HTTP/1.1\r\nContent-Length: x\r\n\r\n")).status, 400);
  EXPECT_EQ(job_count(), jobs) << "a refused request created a job";
  EXPECT_EQ(http(port(), "GET", "/v1/health").json()["status"], "ok");
  EXPECT_EQ(sample(kSmall).status, 200);
}

TEST_F(ServerApi, OversizedRequestsAreRefused) {
  const size_t jobs = job_count();
  // Declared larger than --max-body-mb 4: refused from the head alone, before any body.
  std::string head = "POST /v1/sample HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + std::to_string((4u << 20) + 1) + "\r\n\r\n";
  Reply big = parse_reply(raw_exchange(port(), head + std::string(1000, 'x')));
  EXPECT_EQ(big.status, 413) << big.body;
  EXPECT_NE(big.body.find("exceeds the limit of 4194304 bytes"), std::string::npos);
  // The same with the whole 5 MiB body sent: the answer still arrives (the server drains
  // what the client sends instead of resetting the connection under it).
  std::string whole = "POST /v1/sample HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + std::to_string(5u << 20) +
                      "\r\n\r\n" + std::string(5u << 20, 'x');
  EXPECT_EQ(parse_reply(raw_exchange(port(), whole)).status, 413);
  // A head over 16 KiB.
  Reply fat = parse_reply(raw_exchange(port(), "GET /v1/health HTTP/1.1\r\nX: " + std::string(20000, 'a') + "\r\n\r\n"));
  EXPECT_EQ(fat.status, 431) << fat.body;
  // Too many header fields.
  std::string many = "GET /v1/health HTTP/1.1\r\n";
  for (int i = 0; i < 100; ++i) many += "X-" + std::to_string(i) + ": 1\r\n";
  EXPECT_EQ(parse_reply(raw_exchange(port(), many + "\r\n")).status, 431);
  // A JSON body over 1 MiB (within the body limit).
  Reply json = http(port(), "POST", "/v1/models/load", "{\"model\":\"" + std::string(2 << 20, 'a') + "\"}");
  EXPECT_EQ(json.status, 413) << json.body.substr(0, 200);
  EXPECT_EQ(job_count(), jobs);
  EXPECT_EQ(http(port(), "GET", "/v1/health").status, 200);
}

TEST_F(ServerApi, IdleClientsAreDisconnectedAndKeepAliveWorks) {
  // Silent client: closed after --idle-timeout 2.
  int fd = connect_to(port());
  ASSERT_GE(fd, 0);
  bool closed = false;
  auto t0 = Clock::now();
  read_until_close(fd, 30, &closed);
  ::close(fd);
  EXPECT_TRUE(closed);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 20.0);
  // A head that stops half-way: 408.
  fd = connect_to(port());
  send_all(fd, "GET /v1/health HTTP/1.1\r\n");
  Reply slow = parse_reply(read_until_close(fd, 30));
  ::close(fd);
  EXPECT_EQ(slow.status, 408);
  // Two requests on one connection, the second sent right behind the first.
  std::string two = raw_exchange(port(), "GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(two.rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_NE(two.find("HTTP/1.1 200", 10), std::string::npos) << two;
  EXPECT_NE(two.find("Connection: keep-alive"), std::string::npos);
}

TEST_F(ServerApi, GenerateTurnsAPromptIntoAVideo) {
  const nlohmann::json small = {{"width", 64}, {"height", 64}, {"frames", 5}, {"steps", 3}, {"seed", 2}};
  Reply mp4 = http(port(), "POST", "/v1/generate?wait=1", with(small, {{"prompt", "a red fox in the snow"}}).dump());
  ASSERT_EQ(mp4.status, 200) << mp4.body.substr(0, 300);
  EXPECT_EQ(mp4.headers["content-type"], "video/mp4");
  const std::string file = dir_ + "/fox.mp4";
  std::ofstream(file, std::ios::binary) << mp4.body;
  raylight::VideoInfo info = raylight::probe_video(file);
  EXPECT_EQ(info.frames, 5);
  EXPECT_EQ(info.width, 64);
  EXPECT_EQ(info.height, 64);
  Reply webp = http(port(), "POST", "/v1/generate?wait=1",
                    with(small, {{"prompt", "a red fox"}, {"format", "webp"}}).dump());
  ASSERT_EQ(webp.status, 200) << webp.body.substr(0, 300);
  EXPECT_EQ(webp.headers["content-type"], "image/webp");
  EXPECT_EQ(webp.body.substr(0, 4), "RIFF");

  // The latent equals /v1/sample given the same prompts encoded by the tiny umT5.
  auto backend = raylight::make_cpu_backend();
  auto t5 = raylight::test::load_umt5("tiny", *backend);
  Reply direct = sample(small, {{"context", t5->encode_prompt("a red fox")}, {"negative", t5->encode_prompt("")}});
  Reply latent = http(port(), "POST", "/v1/generate?wait=1",
                      with(small, {{"prompt", "a red fox"}, {"format", "latent"}}).dump());
  ASSERT_EQ(latent.status, 200) << latent.body;
  EXPECT_TRUE(same_bytes(latent_of(latent.body), latent_of(direct.body)));

  const size_t jobs = job_count();
  for (const char* bad : {R"({"prompt":""})", R"({"prompt":"x","steps":0})", R"({"prompt":"x","vae":"/no/vae"})",
                          R"({"prompt":"x","format":"gif"})", R"({"prompt":"x","colour":1})"}) {
    Reply r = http(port(), "POST", "/v1/generate", bad);
    EXPECT_EQ(r.status, 400) << bad << " -> " << r.body;
  }
  EXPECT_EQ(job_count(), jobs);
}

// What would fail on the ranks later is refused at submission, and no job is made.
TEST_F(ServerApi, RequestsThatWouldFailLaterAreRefusedAtOnce) {
  const size_t jobs = job_count();
  // A GPU memory cap on CPU ranks.
  Reply cap = http(port(), "POST", "/v1/models/load", R"({"model":"tiny","gpu_memory_limit_gib":12})");
  EXPECT_EQ(cap.status, 400) << cap.body;
  EXPECT_NE(cap.body.find("caps GPU memory"), std::string::npos) << cap.body;
  // Text encoder and VAE files that are not one: not safetensors at all, or another part.
  const std::string junk = dir_ + "/junk.safetensors";
  std::ofstream(junk, std::ios::binary) << "certainly not a safetensors file";
  const std::string other = dir_ + "/other.safetensors";
  raylight::write_safetensors(other, {{"some.weight", Tensor::zeros({4, 4})}});
  struct Case {
    nlohmann::json body;
    std::string words;
  } cases[] = {
      {{{"prompt", "x"}, {"vae", junk}}, "is not a safetensors file"},
      {{{"prompt", "x"}, {"text_encoder", junk}}, "is not a safetensors file"},
      {{{"prompt", "x"}, {"vae", other}}, "not a"},
      {{{"prompt", "x"}, {"text_encoder", other}}, "not a"},
      {{{"prompt", "x"}, {"vae", "/no/such/vae.safetensors"}}, "does not exist"},
  };
  for (const Case& c : cases) {
    Reply r = http(port(), "POST", "/v1/generate", c.body.dump());
    EXPECT_EQ(r.status, 400) << c.body.dump() << " -> " << r.body;
    EXPECT_NE(r.json().value("error", "").find(c.words), std::string::npos) << c.body.dump() << " -> " << r.body;
    EXPECT_EQ(r.body.find("certainly"), std::string::npos) << "the file's bytes leaked: " << r.body;
  }
  // A size no machine holds: refused by its estimated memory, not at allocation.
  const nlohmann::json huge = {{"width", 8192}, {"height", 8192}, {"frames", 4097}, {"steps", 1}};
  Reply big = http(port(), "POST", "/v1/sample", sample_body(huge));
  EXPECT_EQ(big.status, 400) << big.body;
  EXPECT_NE(big.body.find("this job needs about"), std::string::npos) << big.body;
  Reply big_video = http(port(), "POST", "/v1/generate", with(huge, {{"prompt", "x"}}).dump());
  EXPECT_EQ(big_video.status, 400) << big_video.body;
  EXPECT_NE(big_video.body.find("this job needs about"), std::string::npos) << big_video.body;
  EXPECT_EQ(job_count(), jobs) << "a request that cannot run was queued";
  EXPECT_EQ(http(port(), "GET", "/v1/models").json()["model"]["model"], "tiny");
}

// Cancel acts between transformer blocks, not only between steps: a step at 768x768 takes
// seconds on the CPU; a job cancelled as it starts ends after its first block.
TEST_F(ServerApi, CancelStopsBetweenBlocksNotOnlyBetweenSteps) {
  const nlohmann::json big = {{"width", 768}, {"height", 768}, {"frames", 1}, {"cfg", 5}};
  // One step's length, for the scale of this machine.
  const auto t_step = Clock::now();
  ASSERT_EQ(sample(with(big, {{"steps", 1}})).status, 200);
  const double step_s = std::chrono::duration<double>(Clock::now() - t_step).count();
  Reply sub = http(port(), "POST", "/v1/sample", sample_body(with(big, {{"steps", 3}})));
  ASSERT_EQ(sub.status, 202) << sub.body;
  const std::string id = sub.json()["id"];
  Clock::time_point asked{};
  std::vector<nlohmann::json> events = follow_events(port(), id, [&](const nlohmann::json& s) {
    if (s["state"] == "running" && asked == Clock::time_point{}) {
      // Into the first forward (the step starts right after "running"), as a user would.
      std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(150 * step_s)));
      asked = Clock::now();
      http(port(), "POST", "/v1/jobs/" + id + "/cancel");
    }
    return true;
  });
  const double took = std::chrono::duration<double>(Clock::now() - asked).count();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["state"], "cancelled") << events.back().dump();
  EXPECT_LT(events.back()["step"].get<int>(), 3);
  // Two forwards of two blocks per step (cfg 5): stopping after the first block takes about
  // a quarter of a step; waiting for the step's end would take all of it.
  EXPECT_LT(took, 0.6 * step_s) << "cancel took " << took << " s; one step takes " << step_s << " s";
  EXPECT_TRUE(same_bytes(latent_of(sample(with(kSmall, {{"seed", 3}})).body),
                         cli_sample(dir_, std::string(kSmallFlags) + " --seed 3", "cli_after_block_cancel")));
}

TEST_F(ServerApi, GenerateMakesPicturesForImageFamilies) {
  ASSERT_EQ(http(port(), "POST", "/v1/models/load?wait=1", R"({"model":"tiny-flux"})").status, 200);
  Reply png = http(port(), "POST", "/v1/generate?wait=1",
                   R"({"prompt":"a red fox","width":32,"height":32,"steps":2,"guidance":2.5})");
  EXPECT_EQ(png.status, 200) << png.body.substr(0, 300);
  EXPECT_EQ(png.headers["content-type"], "image/png");
  EXPECT_EQ(png.body.substr(0, 4), "\x89PNG");
  Reply webp = http(port(), "POST", "/v1/generate?wait=1",
                    R"({"prompt":"a red fox","width":32,"height":32,"steps":1,"format":"webp"})");
  EXPECT_EQ(webp.status, 200) << webp.body.substr(0, 300);
  EXPECT_EQ(webp.headers["content-type"], "image/webp");
  for (const char* bad : {R"({"prompt":"x","format":"mp4"})", R"({"prompt":"x","text_encoder_2":"/no/clip"})",
                          R"({"prompt":"x","guidance":"high"})"}) {
    Reply r = http(port(), "POST", "/v1/generate", bad);
    EXPECT_EQ(r.status, 400) << bad << " -> " << r.body;
  }
  ASSERT_EQ(http(port(), "POST", "/v1/models/load?wait=1", R"({"model":"tiny"})").status, 200);
}

TEST_F(ServerApi, GenerateTakesKontextReferencePictures) {
  ASSERT_EQ(http(port(), "POST", "/v1/models/load?wait=1", R"({"model":"tiny-flux"})").status, 200);
  Tensor picture = Tensor::empty({3, 50, 70});
  for (int64_t i = 0; i < picture.numel(); ++i) picture.f32()[i] = static_cast<float>((i % 89) / 44.0 - 1.0);
  const std::string in = dir_ + "/in.png";
  raylight::write_image(in, picture);
  auto png_of = [&](const nlohmann::json& body) {
    Reply r = http(port(), "POST", "/v1/generate?wait=1", body.dump());
    EXPECT_EQ(r.status, 200) << body.dump() << " -> " << r.body.substr(0, 300);
    const std::string file = dir_ + "/out.png";
    std::ofstream(file, std::ios::binary) << r.body;
    return raylight::read_picture(file);
  };
  // Kept at its size (cut to 64x48), which the output takes; the reference changes it.
  const nlohmann::json edit = {{"prompt", "make it red"}, {"steps", 1}, {"images", {in}}, {"resize", false}};
  const raylight::RgbPicture a = png_of(edit);
  EXPECT_EQ(a.width, 64);
  EXPECT_EQ(a.height, 48);
  const raylight::RgbPicture plain = png_of({{"prompt", "make it red"}, {"steps", 1}, {"width", 64}, {"height", 48}});
  EXPECT_NE(a.rgb, plain.rgb);
  const size_t jobs = job_count();
  nlohmann::json many = edit;
  for (int i = 0; i < 8; ++i) many["images"].push_back(in);
  for (const nlohmann::json& bad : {nlohmann::json{{"prompt", "x"}, {"images", in}},
                                    nlohmann::json{{"prompt", "x"}, {"images", {1}}},
                                    nlohmann::json{{"prompt", "x"}, {"images", {dir_ + "/none.png"}}},
                                    nlohmann::json{{"prompt", "x"}, {"images", {in}}, {"resize", "no"}}, many}) {
    Reply r = http(port(), "POST", "/v1/generate", bad.dump());
    EXPECT_EQ(r.status, 400) << bad.dump() << " -> " << r.body;
  }
  EXPECT_EQ(job_count(), jobs);
  ASSERT_EQ(http(port(), "POST", "/v1/models/load?wait=1", R"({"model":"tiny"})").status, 200);
}
