// `raylight serve` against clients that try to make it work for them without the token,
// web pages in the user's browser, and requests that name files they should not see: each
// case as an attacker would try it, over real sockets, against a real server.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "test_server_support.h"

using namespace server_test;

namespace {

// Reads from `fd` until `done` says the bytes are enough, the peer closes or time runs out.
std::string read_for(int fd, double timeout_s, const std::function<bool(const std::string&)>& done = {}) {
  std::string out;
  const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int>(timeout_s * 1000));
  char buf[65536];
  while (Clock::now() < deadline && !(done && done(out))) {
    pollfd p{fd, POLLIN, 0};
    int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (::poll(&p, 1, std::max(ms, 0)) <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

bool has_whole_reply(const std::string& raw) {
  Reply r = parse_reply(raw);
  return r.status != 0 && r.status != 100;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

class ServerHostile : public ::testing::Test {
 public:
  void SetUp() override { dir_ = make_temp_dir("server_hostile"); }
  void TearDown() override {
    server_.kill_all();
    EXPECT_TRUE(server_.survivors().empty());
    std::filesystem::remove_all(dir_);
  }

 protected:
  int port() const { return server_.port(); }
  std::string dir_;
  ServerProcess server_;
};

// No 100 Continue and no body read before the token is checked; the answer comes from the
// head alone.
TEST_F(ServerHostile, TheTokenIsCheckedBeforeAnyBodyIsRead) {
  server_.start(dir_, {"--max-body-mb", "64", "--idle-timeout", "20"}, {"RAYLIGHT_TOKEN=s3cret"});
  ASSERT_TRUE(server_.wait_ready_with_token("s3cret")) << server_.log();
  for (const bool expect : {true, false}) {
    int fd = connect_to(port());
    ASSERT_GE(fd, 0);
    const auto t0 = Clock::now();
    send_all(fd, std::string("POST /v1/sample HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n") +
                     (expect ? "Expect: 100-continue\r\n" : "") + "Content-Length: 60000000\r\n\r\n");
    const std::string raw = read_for(fd, 10, has_whole_reply);
    ::close(fd);
    EXPECT_EQ(raw.find("100 Continue"), std::string::npos) << raw;
    EXPECT_EQ(parse_reply(raw).status, 401) << raw;
    EXPECT_LT(seconds_since(t0), 5.0) << "the server waited for a body it should not read";
  }
  // With the token, the same head is let through: 100 Continue, then the body is read.
  int fd = connect_to(port());
  send_all(fd, "POST /v1/sample HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3cret\r\n"
               "Content-Type: application/octet-stream\r\nExpect: 100-continue\r\nContent-Length: 8\r\n\r\n");
  EXPECT_EQ(read_for(fd, 10, [](const std::string& s) { return s.find("\r\n\r\n") != std::string::npos; })
                .rfind("HTTP/1.1 100 Continue\r\n", 0),
            0u);
  send_all(fd, std::string(8, '\0'));
  EXPECT_EQ(parse_reply(read_for(fd, 10, has_whole_reply)).status, 400);  // 8 zero bytes are no safetensors
  ::close(fd);
}

// Connections that drip a head never finish it: each is cut off at --head-timeout, and when
// they take every slot, a client that sends a whole, authorized request still gets in.
TEST_F(ServerHostile, DrippingClientsCannotLockOutTheTokenHolder) {
  server_.start(dir_, {"--max-connections", "4", "--head-timeout", "3", "--idle-timeout", "30",
                       "--request-timeout", "300"},
                {"RAYLIGHT_TOKEN=s3cret"});
  ASSERT_TRUE(server_.wait_ready_with_token("s3cret")) << server_.log();
  const std::string head = "GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
  std::vector<int> drips;
  std::atomic<bool> stop{false};
  for (int i = 0; i < 4; ++i) drips.push_back(connect_to(port()));
  std::thread dripper([&] {
    size_t at = 0;
    while (!stop) {
      for (int fd : drips) send_all(fd, std::string(1, at < head.size() ? head[at] : 'a'));
      ++at;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto t0 = Clock::now();
  Reply ok = http(port(), "GET", "/v1/health", "", {"Authorization: Bearer s3cret"}, 10);
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_LT(seconds_since(t0), 5.0);
  // The drippers are gone within the head timeout, long before idle or request timeouts.
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));
  stop = true;
  dripper.join();
  int closed = 0;
  for (int fd : drips) {
    bool c = false;
    read_until_close(fd, 2, &c);
    closed += c;
    ::close(fd);
  }
  EXPECT_EQ(closed, 4);
  EXPECT_EQ(http(port(), "GET", "/v1/health", "", {"Authorization: Bearer s3cret"}, 10).status, 200);
  EXPECT_EQ(server_.stop(30, "s3cret"), 0);
}

// Bodies being received at once stay under --max-body-total-mb, whatever the connections.
TEST_F(ServerHostile, BodiesInFlightAreBoundedAcrossConnections) {
  server_.start(dir_, {"--max-body-mb", "4", "--max-body-total-mb", "8", "--idle-timeout", "2"});
  ASSERT_TRUE(server_.wait_ready()) << server_.log();
  const std::string head = "POST /v1/sample HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                           "Content-Length: " + std::to_string(4u << 20) + "\r\n\r\n";
  std::vector<int> fds;
  for (int i = 0; i < 2; ++i) {
    fds.push_back(connect_to(port()));
    send_all(fds.back(), head + std::string(1000, 'x'));  // 8 MiB promised, little sent
  }
  std::atomic<bool> stop{false};
  std::thread trickle([&] {  // keeps both bodies alive past the idle timeout
    while (!stop) {
      for (int fd : fds) send_all(fd, "x");
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int third = connect_to(port());
  send_all(third, head);
  const auto t0 = Clock::now();
  Reply busy = parse_reply(read_for(third, 10, has_whole_reply));
  ::close(third);
  EXPECT_EQ(busy.status, 503) << busy.body;
  EXPECT_NE(busy.body.find("other large request bodies"), std::string::npos) << busy.body;
  EXPECT_EQ(busy.headers["retry-after"], "2");
  EXPECT_LT(seconds_since(t0), 6.0);
  stop = true;
  trickle.join();
  for (int fd : fds) ::close(fd);
  // Once those are gone, a body fits again (refused for what it is, not for its size).
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(http(port(), "POST", "/v1/sample", std::string(4u << 20, 'x')).status, 400);
}

// A web page cannot drive a loopback server: not by a cross-site POST (a form's content
// types, an Origin), and not by rebinding its own name to 127.0.0.1 (Host).
TEST_F(ServerHostile, WebPagesCannotDriveALoopbackServer) {
  server_.start(dir_, {"--model", "tiny"});
  ASSERT_TRUE(server_.wait_ready()) << server_.log();
  ASSERT_TRUE(wait_model(port())) << server_.log();
  struct Case {
    std::string method, target, body;
    std::vector<std::string> headers;
    int status;
  } cases[] = {
      {"POST", "/v1/shutdown", "", {"Origin: http://evil.example", "Content-Type: text/plain"}, 403},
      {"POST", "/v1/shutdown", "", {"Content-Type: text/plain"}, 415},
      {"POST", "/v1/shutdown", "", {"Origin: http://evil.example"}, 403},
      {"POST", "/v1/shutdown", "", {"Sec-Fetch-Site: cross-site"}, 403},
      {"POST", "/v1/models/unload", "{}", {"Content-Type: text/plain"}, 415},
      {"POST", "/v1/models/load", "{\"model\":\"tiny\"}", {"Content-Type: application/x-www-form-urlencoded"}, 415},
      {"POST", "/v1/generate", "{\"prompt\":\"x\"}", {"Content-Type: multipart/form-data; boundary=b"}, 415},
      {"POST", "/v1/sample", "x", {"Content-Type: text/plain"}, 415},
  };
  for (const Case& c : cases) {
    Reply r = http(port(), c.method, c.target, c.body, c.headers);
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.target << " " << c.headers[0] << " -> " << r.body;
  }
  // DNS rebinding: the request reaches 127.0.0.1 but names the page's host.
  Reply rebound = parse_reply(raw_exchange(port(), "POST /v1/shutdown HTTP/1.1\r\nHost: evil.example:" +
                                                        std::to_string(port()) + "\r\nContent-Length: 0\r\n\r\n", 10));
  EXPECT_EQ(rebound.status, 403) << rebound.body;
  Reply peek = parse_reply(raw_exchange(port(), "GET /v1/jobs HTTP/1.1\r\nHost: evil.example\r\n\r\n", 10));
  EXPECT_EQ(peek.status, 403) << peek.body;
  // Still up, model still loaded; a plain curl -X POST still stops it.
  Reply h = http(port(), "GET", "/v1/health");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.json()["model"]["model"], "tiny");
  EXPECT_EQ(server_.stop(), 0) << server_.log();
}

// Small HTTP things: HEAD has no body, bare-LF heads are answered at once, the bearer
// scheme's case, two Authorization headers, a whitespace-only token.
TEST_F(ServerHostile, HeadBareLinefeedsAndTokenSpelling) {
  server_.start(dir_, {"--idle-timeout", "20"}, {"RAYLIGHT_TOKEN=s3cret"});
  ASSERT_TRUE(server_.wait_ready_with_token("s3cret")) << server_.log();
  // HEAD: the GET head (with its Content-Length) and no body, so a second request on the
  // same connection is read right after it.
  std::string two = raw_exchange(port(), "HEAD /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3cret\r\n\r\n"
                                         "HEAD /v1/sample HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3cret\r\n\r\n",
                                 10);
  EXPECT_EQ(two.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << two;
  const size_t second_at = two.find("HTTP/1.1 ", 1);
  ASSERT_NE(second_at, std::string::npos) << two;
  EXPECT_EQ(two.find("\r\n\r\n") + 4, second_at) << "HEAD got a body:\n" << two;
  const std::string first_head = two.substr(0, second_at);
  const size_t length_at = first_head.find("Content-Length: ");
  ASSERT_NE(length_at, std::string::npos) << first_head;
  EXPECT_GT(std::stoul(first_head.substr(length_at + 16)), 0u) << "HEAD must announce the GET body's length";
  EXPECT_EQ(two.compare(second_at, 25, "HTTP/1.1 405 Method Not A"), 0) << two;
  EXPECT_NE(two.find("Allow: POST\r\n", second_at), std::string::npos) << two;
  EXPECT_EQ(two.substr(two.find("\r\n\r\n", second_at) + 4), "") << "HEAD 405 got a body";
  // Lines ended by LF alone: 400 at once, not a wait for the idle timeout.
  const auto t0 = Clock::now();
  Reply lf = parse_reply(raw_exchange(port(), "GET /v1/health HTTP/1.1\nHost: 127.0.0.1\n\n", 15));
  EXPECT_EQ(lf.status, 400) << lf.body;
  EXPECT_NE(lf.body.find("CRLF"), std::string::npos);
  EXPECT_LT(seconds_since(t0), 3.0);
  // The scheme is case-insensitive; two Authorization headers are refused.
  EXPECT_EQ(http(port(), "GET", "/v1/health", "", {"Authorization: bearer s3cret"}).status, 200);
  EXPECT_EQ(http(port(), "GET", "/v1/health", "", {"Authorization: Bearer s3cret", "Authorization: Bearer x"}).status,
            400);
  EXPECT_EQ(http(port(), "GET", "/v1/health", "", {"Authorization: Bearer x", "Authorization: Bearer s3cret"}).status,
            400);
  EXPECT_EQ(server_.stop(30, "s3cret"), 0);

  // A token of blanks would protect nothing: the server refuses to start with one.
  for (const char* blank : {"RAYLIGHT_TOKEN=   ", "RAYLIGHT_TOKEN=\t"}) {
    ServerProcess s;
    s.start(dir_, {"--listen", "0.0.0.0:0"}, {blank});
    EXPECT_EQ(s.wait_exit(60), 2) << s.log();
    EXPECT_NE(s.log().find("empty or only whitespace"), std::string::npos) << s.log();
    s.kill_all();
  }
  const std::string token_file = dir_ + "/token";
  std::ofstream(token_file) << "  \n";
  ServerProcess f;
  f.start(dir_, {"--token-file", token_file});
  EXPECT_EQ(f.wait_exit(60), 2) << f.log();
  EXPECT_NE(f.log().find("only whitespace"), std::string::npos) << f.log();
  f.kill_all();
}

// A request naming a file that is not a model learns that, and nothing the file holds.
TEST_F(ServerHostile, FileContentsNeverLeakThroughErrors) {
  const std::string models = dir_ + "/models";
  std::filesystem::create_directories(models);
  server_.start(dir_, {"--models-dir", models});
  ASSERT_TRUE(server_.wait_ready()) << server_.log();
  // Files as a secret would look: the first 8 bytes read as a header length; a JSON-ish
  // start that a parser would quote near its syntax error.
  const std::string shadow = dir_ + "/shadow";
  std::ofstream(shadow, std::ios::binary) << "root:$6$hunter2saltsalt$abcdefgh:19000:0:99999:7:::\n";
  const std::string jsonish = models + "/jsonish.safetensors";
  {
    std::string text = "{\"api_key\": \"hunter2-hunter2-hunter2\", oops";
    std::string bytes(8, '\0');
    bytes[0] = static_cast<char>(text.size());
    std::ofstream(jsonish, std::ios::binary) << bytes << text;
  }
  const std::string in_models_shadow = models + "/shadow.safetensors";
  std::filesystem::copy_file(shadow, in_models_shadow);
  for (const std::string& file : {in_models_shadow, jsonish}) {
    Reply r = http(port(), "POST", "/v1/models/load", nlohmann::json{{"model", file}}.dump());
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find("is not a safetensors file"), std::string::npos) << r.body;
    for (const char* secret : {"hunter2", "root:", "3619251681095544690", "api_key", "oops"})
      EXPECT_EQ(r.body.find(secret), std::string::npos) << "leaked '" << secret << "': " << r.body;
  }
  // Outside --models-dir: refused before the file is touched, whether named directly,
  // through "..", or through a link inside the folder.
  std::filesystem::create_symlink(shadow, models + "/link.safetensors");
  for (const std::string& file : {shadow, models + "/../shadow", models + "/link.safetensors", std::string("/etc/passwd")}) {
    Reply r = http(port(), "POST", "/v1/models/load", nlohmann::json{{"model", file}}.dump());
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find("outside the folders this server reads models from"), std::string::npos) << r.body;
    for (const nlohmann::json& body : {nlohmann::json{{"prompt", "x"}, {"vae", file}},
                                       nlohmann::json{{"prompt", "x"}, {"text_encoder_2", file}},
                                       nlohmann::json{{"prompt", "x"}, {"images", {file}}}}) {
      Reply g = http(port(), "POST", "/v1/generate", body.dump());
      EXPECT_EQ(g.status, 400) << body.dump() << ": " << g.body;
      EXPECT_NE(g.body.find("outside the folders"), std::string::npos) << g.body;
    }
  }
  // A NUL byte ends the path for the system: "x.safetensors\0" would open x.safetensors.
  Reply nul = http(port(), "POST", "/v1/models/load",
                   nlohmann::json{{"model", in_models_shadow + std::string(1, '\0') + "x"}}.dump());
  EXPECT_EQ(nul.status, 400) << nul.body;
  EXPECT_NE(nul.body.find("NUL"), std::string::npos) << nul.body;
  EXPECT_EQ(http(port(), "POST", "/v1/models/load?wait=1", R"({"model":"tiny"})").status, 200);
  EXPECT_EQ(server_.stop(), 0) << server_.log();
}

// The server ends with the process that started it (--parent-pid), however that ends.
TEST_F(ServerHostile, TheServerEndsWithItsParent) {
  const pid_t parent = ::fork();
  if (parent == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::pause();
    ::_exit(0);
  }
  server_.start(dir_, {"--ranks", "2", "--model", "tiny", "--parent-pid", std::to_string(parent)});
  ASSERT_TRUE(server_.wait_ready()) << server_.log();
  ASSERT_TRUE(wait_model(port())) << server_.log();
  ::kill(parent, SIGKILL);  // as a killed ComfyUI: no atexit, nothing sent to the server
  ::waitpid(parent, nullptr, 0);
  EXPECT_EQ(server_.wait_exit(30), 0) << server_.log();
  EXPECT_NE(server_.log().find("--parent-pid has ended"), std::string::npos) << server_.log();
  EXPECT_FALSE(std::filesystem::exists(server_.port_file()));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(server_.survivors().empty());
  // A parent that is already gone is refused at start.
  ServerProcess late;
  late.start(dir_, {"--parent-pid", std::to_string(parent)});
  EXPECT_NE(late.wait_exit(60), 0);
  EXPECT_NE(late.log().find("no such process"), std::string::npos) << late.log();
  late.kill_all();
}
