// Fuzzing the HTTP layer, deterministically (fixed seeds, so a failure reproduces): the head
// parser with mutated requests, checking what must hold for any input; then a live server
// with the same mutations over sockets, which must answer each or close, and stay up.
#include <gtest/gtest.h>

#include <random>

#include "server/http_message.h"
#include "test_server_support.h"

using namespace raylight::server;

namespace {

const char* const kSeeds[] = {
    "GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "POST /v1/models/load?wait=1 HTTP/1.1\r\nHost: 127.0.0.1:8690\r\nContent-Type: application/json\r\n"
    "Content-Length: 16\r\n\r\n{\"model\":\"tiny\"}",
    "POST /v1/sample HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Type: application/octet-stream\r\n"
    "Content-Length: 8\r\nAuthorization: Bearer t\r\n\r\n\0\0\0\0\0\0\0\0",
    "HEAD /v1/jobs/0123456789abcdef0123456789abcdef/result HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "DELETE /v1/jobs/x HTTP/1.1\r\nHost: [::1]:8690\r\nOrigin: http://evil.example\r\n\r\n",
};

// One random edit of `s`: flip, insert, delete, duplicate a span, or splice in a token that
// parsers trip on.
std::string mutate(std::string s, std::mt19937& rng) {
  static const char* const tokens[] = {"\r\n", "\n", "\r", "\r\n\r\n", ":", " ", "\t", "\0", "%00",
                                       "Content-Length: 5\r\n", "Transfer-Encoding: chunked\r\n",
                                       "Content-Length: -1", "99999999999999999999", "HTTP/1.1",
                                       "Host: evil\r\n", "\xff\xfe", "\x7f", "?a=%zz&b=%4", "/../"};
  auto pick = [&](size_t n) { return n == 0 ? size_t(0) : std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  const size_t at = pick(s.size() + 1);
  switch (pick(5)) {
    case 0:
      if (!s.empty()) s[pick(s.size())] = static_cast<char>(pick(256));
      break;
    case 1: {
      const char* t = tokens[pick(std::size(tokens))];
      s.insert(at, std::string(t, std::strlen(t) + (*t == '\0')));
      break;
    }
    case 2:
      if (!s.empty()) s.erase(pick(s.size()), 1 + pick(8));
      break;
    case 3:
      if (!s.empty()) {
        const size_t from = pick(s.size());
        s.insert(at, s.substr(from, 1 + pick(40)));
      }
      break;
    default:
      s.insert(at, std::string(1 + pick(3000), static_cast<char>('a' + pick(26))));
  }
  return s;
}

std::string seed_text(size_t i) {
  const char* s = kSeeds[i];
  // The third seed holds NUL bytes: its length is the head plus 8.
  return i == 2 ? std::string(s, std::strlen(s) + 8) : std::string(s);
}

}  // namespace

TEST(ServerHttpFuzz, TheHeadParserHoldsItsContractOnMutatedInput) {
  std::mt19937 rng(20240923);
  HttpLimits lim;
  lim.max_head_bytes = 4096;
  lim.max_headers = 16;
  lim.max_body_bytes = 1 << 20;
  int complete = 0, bad = 0, incomplete = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string text = seed_text(static_cast<size_t>(iter) % std::size(kSeeds));
    const int edits = 1 + static_cast<int>(rng() % 6);
    for (int e = 0; e < edits; ++e) text = mutate(text, rng);
    HttpRequest r;
    HeadParse p = parse_request_head(text, lim, &r);
    SCOPED_TRACE(::testing::PrintToString(text));
    switch (p.kind) {
      case HeadParse::Complete:
        ++complete;
        ASSERT_LE(p.head_bytes, text.size());
        ASSERT_LE(p.head_bytes, lim.max_head_bytes);
        ASSERT_EQ(text.compare(p.head_bytes - 4, 4, "\r\n\r\n"), 0);
        ASSERT_LE(p.content_length, lim.max_body_bytes);
        ASSERT_FALSE(r.method.empty());
        ASSERT_EQ(r.path.front(), '/');
        ASSERT_LE(r.headers.size(), lim.max_headers);
        for (const auto& [k, v] : r.headers) {
          ASSERT_FALSE(k.empty());
          ASSERT_EQ(k.find_first_of(" \t\r\n:"), std::string::npos);
          ASSERT_EQ(v.find_first_of("\r\n"), std::string::npos);
        }
        {  // the head alone parses the same; what follows it is not part of it
          HttpRequest again;
          HeadParse q = parse_request_head(text.substr(0, p.head_bytes), lim, &again);
          ASSERT_EQ(q.kind, HeadParse::Complete);
          ASSERT_EQ(q.content_length, p.content_length);
          ASSERT_EQ(again.headers, r.headers);
        }
        break;
      case HeadParse::Bad:
        ++bad;
        ASSERT_TRUE(p.status == 400 || p.status == 413 || p.status == 431 || p.status == 501 || p.status == 505)
            << p.status;
        ASSERT_FALSE(p.message.empty());
        break;
      case HeadParse::Incomplete:
        ++incomplete;
        // Waiting for more is only right while the head could still end well.
        ASSERT_LE(text.size(), lim.max_head_bytes);
        ASSERT_EQ(text.find("\r\n\r\n"), std::string::npos);
        for (size_t i = 0; i < text.size(); ++i)  // a bare LF is refused at once, never waited on
          if (text[i] == '\n') ASSERT_TRUE(i > 0 && text[i - 1] == '\r');
        break;
    }
    // Fed in two parts, the first part never gets an answer the whole would contradict: an
    // Incomplete prefix or the same verdict.
    const size_t cut = rng() % (text.size() + 1);
    HttpRequest part;
    HeadParse first = parse_request_head(std::string_view(text).substr(0, cut), lim, &part);
    if (first.kind == HeadParse::Complete) ASSERT_EQ(p.kind, HeadParse::Complete);
    if (first.kind == HeadParse::Bad) ASSERT_EQ(p.kind, HeadParse::Bad);
  }
  // The mutations reach every outcome (else the fuzzer tests little).
  EXPECT_GT(complete, 1000);
  EXPECT_GT(bad, 1000);
  EXPECT_GT(incomplete, 100);
}

TEST(ServerHttpFuzz, ALiveServerAnswersOrClosesAndStaysUp) {
  using namespace server_test;
  const std::string dir = make_temp_dir("server_fuzz");
  struct RemoveDir {
    std::string d;
    ~RemoveDir() { std::filesystem::remove_all(d); }
  } remove_dir{dir};
  ServerProcess server;
  server.start(dir, {"--idle-timeout", "1", "--head-timeout", "1", "--max-body-mb", "1"});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  std::mt19937 rng(7);
  int answered = 0;
  for (int iter = 0; iter < 300; ++iter) {
    std::string text = seed_text(static_cast<size_t>(iter) % std::size(kSeeds));
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) text = mutate(text, rng);
    const auto t0 = Clock::now();
    // Sent, then the sending side closed: the server answers what it has whole and closes.
    int fd = connect_to(server.port());
    ASSERT_GE(fd, 0);
    send_all(fd, text);
    ::shutdown(fd, SHUT_WR);
    const std::string raw = read_until_close(fd, 10);
    ::close(fd);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    // Every byte sequence ends within the timeouts (1 s, plus a second of draining).
    ASSERT_LT(secs, 5.0) << ::testing::PrintToString(text);
    if (raw.empty()) continue;  // closed without a word: a connection that sent nothing whole
    ASSERT_EQ(raw.rfind("HTTP/1.1 ", 0), 0u) << ::testing::PrintToString(text) << "\n-> " << raw;
    const int status = std::atoi(raw.c_str() + 9);
    ASSERT_TRUE(status == 100 || (status >= 200 && status < 600)) << raw;
    ASSERT_NE(status, 500) << ::testing::PrintToString(text) << "\n-> " << raw;
    ++answered;
  }
  EXPECT_GT(answered, 200);
  EXPECT_EQ(http(server.port(), "GET", "/v1/health").status, 200);
  EXPECT_EQ(server.stop(), 0) << server.log();
  EXPECT_TRUE(server.survivors().empty());
}
