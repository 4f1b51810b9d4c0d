// Starting and stopping `raylight serve`: the token rule, SIGTERM during a job, and the
// shutdown endpoint - each with its own server, and no process left behind.
#include <gtest/gtest.h>

#include <thread>

#include "test_server_support.h"

using namespace server_test;

class ServerLifecycle : public ::testing::Test {
 public:
  void SetUp() override { dir_ = make_temp_dir("server_life"); }
  void TearDown() override {
    server_.kill_all();
    EXPECT_TRUE(server_.survivors().empty());
    std::filesystem::remove_all(dir_);
  }

 protected:
  std::string dir_;
  ServerProcess server_;
};

TEST_F(ServerLifecycle, ATokenIsRequiredAwayFromLoopback) {
  // Refused before it binds anything.
  server_.start(dir_, {"--listen", "0.0.0.0:0"});
  EXPECT_EQ(server_.wait_exit(60), 2);
  EXPECT_NE(server_.log().find("reachable from other machines: set a token"), std::string::npos) << server_.log();
  EXPECT_FALSE(std::filesystem::exists(server_.port_file()));

  // With a token (here on loopback) every request needs it.
  ServerProcess guarded;
  guarded.start(dir_, {}, {"RAYLIGHT_TOKEN=s3cret"});
  ASSERT_TRUE(guarded.wait_ready_with_token("s3cret")) << guarded.log();
  Reply none = http(guarded.port(), "GET", "/v1/health");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.headers["www-authenticate"], "Bearer");
  EXPECT_EQ(http(guarded.port(), "GET", "/v1/health", "", {"Authorization: Bearer wrong"}).status, 401);
  EXPECT_EQ(http(guarded.port(), "GET", "/v1/health", "", {"Authorization: Bearer s3cret"}).status, 200);
  EXPECT_EQ(http(guarded.port(), "POST", "/v1/shutdown").status, 401);
  EXPECT_EQ(http(guarded.port(), "POST", "/v1/shutdown", "", {"Authorization: Bearer s3cret"}).status, 200);
  EXPECT_EQ(guarded.wait_exit(30), 0) << guarded.log();
  guarded.kill_all();
  EXPECT_TRUE(guarded.survivors().empty());
}

TEST_F(ServerLifecycle, SigtermCancelsTheRunningJobAndExitsCleanly) {
  server_.start(dir_, {"--model", "tiny"});
  ASSERT_TRUE(server_.wait_ready()) << server_.log();
  Reply sub = http(server_.port(), "POST", "/v1/sample",
                   sample_body({{"width", 64}, {"height", 64}, {"frames", 5}, {"steps", 5000}}));
  ASSERT_EQ(sub.status, 202) << sub.body;
  const std::string id = sub.json()["id"];
  Reply waiting;
  std::thread client([&] { waiting = http(server_.port(), "GET", "/v1/jobs/" + id + "/result?wait=1"); });
  follow_events(server_.port(), id, [](const nlohmann::json& s) { return s["step"].get<int>() < 1; });
  ASSERT_EQ(::kill(server_.pid(), SIGTERM), 0);
  EXPECT_EQ(server_.wait_exit(60), 0) << server_.log();
  client.join();
  // The waiting client heard the job end (or saw the connection close), never hung.
  EXPECT_TRUE(waiting.status == 409 || waiting.status == 0) << waiting.status << " " << waiting.body;
  EXPECT_NE(server_.log().find("cancelled"), std::string::npos) << server_.log();
  EXPECT_NE(server_.log().find("shutting down"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(server_.port_file()));
}

TEST_F(ServerLifecycle, BadStartOptionsFailWithAMessage) {
  struct Case {
    std::vector<std::string> args;
    std::string words;
  } cases[] = {
      {{"--listen", "nowhere:1"}, "not a numeric IPv4 or IPv6 address"},
      {{"--ulysses", "2"}, "describe how --model is loaded"},
      {{"--gpu-memory-limit", "12"}, "describe how --model is loaded"},
      {{"--model", "/no/such.safetensors"}, "does not exist"},
      {{"--model", "tiny", "--ulysses", "2"}, "needs 2 ranks but the job has 1"},
      {{"--max-body-mb", "0"}, "--max-body-mb"},
      {{"--bogus"}, "bogus"},
  };
  for (const Case& c : cases) {
    ServerProcess s;
    s.start(dir_, c.args);
    EXPECT_EQ(s.wait_exit(60), 2);
    EXPECT_NE(s.log().find(c.words), std::string::npos) << s.log();
    s.kill_all();
  }
}

TEST_F(ServerLifecycle, ConnectionAndQueueLimitsAnswerInsteadOfPiling) {
  server_.start(dir_, {"--model", "tiny", "--max-connections", "2", "--max-queue", "1"});
  ASSERT_TRUE(server_.wait_ready()) << server_.log();
  ASSERT_TRUE(wait_model(server_.port())) << server_.log();
  // Two kept-alive connections (each answered once, so surely accepted) fill the server;
  // a third is answered 503 and closed.
  // A connection that just closed may still count for a moment, so each is retried until
  // it is served.
  auto hold = [&]() {
    for (int attempt = 0; attempt < 100; ++attempt) {
      int fd = connect_to(server_.port());
      send_all(fd, "GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      std::string got;
      char buf[4096];
      while (got.find("}\n") == std::string::npos) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 30000) <= 0) break;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
      }
      if (got.rfind("HTTP/1.1 200", 0) == 0) return fd;
      ::close(fd);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  };
  int a = hold(), b = hold();
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  EXPECT_EQ(http(server_.port(), "GET", "/v1/health").status, 503);
  ::close(a);
  ::close(b);
  Reply ok;
  for (int i = 0; i < 50 && ok.status != 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ok = http(server_.port(), "GET", "/v1/health");
  }
  EXPECT_EQ(ok.status, 200);
  // One job running, one queued: the next is refused with 429 and nothing changes. (A
  // connection just closed may still count for a moment: 503 means "try again".)
  auto request = [&](const std::string& method, const std::string& path, const std::string& body = "") {
    Reply r;
    for (int i = 0; i < 100; ++i) {
      r = http(server_.port(), method, path, body);
      if (r.status != 503) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return r;
  };
  const std::string longjob = sample_body({{"width", 64}, {"height", 64}, {"frames", 5}, {"steps", 5000}});
  Reply first = request("POST", "/v1/sample", longjob);
  ASSERT_EQ(first.status, 202);
  const std::string id = first.json()["id"];
  while (request("GET", "/v1/jobs/" + id).json().value("state", "") == "queued")
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  Reply second = request("POST", "/v1/sample", longjob);
  ASSERT_EQ(second.status, 202);
  Reply third = request("POST", "/v1/sample", longjob);
  EXPECT_EQ(third.status, 429) << third.body;
  EXPECT_EQ(request("GET", "/v1/jobs").json()["jobs"].size(), 3u);  // the load and two samples
  EXPECT_EQ(server_.stop(), 0) << server_.log();  // cancels the running and the queued job
}
