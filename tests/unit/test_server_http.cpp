// The HTTP request parser on its own: what it accepts, and the status it answers for
// everything it refuses (the part of the server that faces untrusted bytes).
#include <gtest/gtest.h>

#include "server/http_message.h"

using namespace raylight::server;

namespace {

HeadParse parse(const std::string& text, HttpRequest* r, HttpLimits lim = {}) {
  return parse_request_head(text, lim, r);
}

}  // namespace

TEST(ServerHttpParse, ReadsRequestLineHeadersAndQuery) {
  HttpRequest r;
  HeadParse p = parse("POST /v1/sample?wait=1&x=a%20b+c HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                      "X-Thing:  spaced value \r\n\r\nhello", &r);
  ASSERT_EQ(p.kind, HeadParse::Complete) << p.message;
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/v1/sample");
  EXPECT_EQ(r.query_param("wait"), "1");
  EXPECT_EQ(r.query_param("x"), "a b c");
  EXPECT_FALSE(r.query_param("y"));
  EXPECT_EQ(p.content_length, 5u);
  ASSERT_NE(r.header("x-thing"), nullptr);
  EXPECT_EQ(*r.header("x-thing"), "spaced value");
  EXPECT_EQ(p.head_bytes, std::string("POST /v1/sample?wait=1&x=a%20b+c HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                                      "X-Thing:  spaced value \r\n\r\n").size());
  EXPECT_TRUE(r.keep_alive());
}

TEST(ServerHttpParse, KeepAliveFollowsVersionAndConnectionHeader) {
  HttpRequest r;
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", &r).kind, HeadParse::Complete);
  EXPECT_FALSE(r.keep_alive());
  ASSERT_EQ(parse("GET / HTTP/1.0\r\n\r\n", &r).kind, HeadParse::Complete);
  EXPECT_FALSE(r.keep_alive());
  ASSERT_EQ(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r).kind, HeadParse::Complete);
  EXPECT_TRUE(r.keep_alive());
}

TEST(ServerHttpParse, WaitsForTheBlankLine) {
  HttpRequest r;
  EXPECT_EQ(parse("GET /v1/health HTTP/1.1\r\nHost: x\r\n", &r).kind, HeadParse::Incomplete);
  EXPECT_EQ(parse("", &r).kind, HeadParse::Incomplete);
  HttpRequest r2;
  HeadParse p = parse("GET /v1/health HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", &r2);
  EXPECT_EQ(p.kind, HeadParse::Complete);
  EXPECT_TRUE(p.expect_continue);
}

TEST(ServerHttpParse, RefusesMalformedAndOversizedHeads) {
  HttpLimits lim;
  lim.max_head_bytes = 256;
  lim.max_headers = 4;
  lim.max_body_bytes = 1000;
  struct Case {
    std::string text;
    int status;
  } cases[] = {
      {"GET / HTTP/1.1\r\nX: " + std::string(300, 'a') + "\r\n\r\n", 431},
      {"GET / HTTP/1.1\r\nX: " + std::string(300, 'a'), 431},  // no end in sight, already too long
      {"GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n", 431},
      {"GET / HTTP/2.0\r\n\r\n", 505},
      {"GET / FTP/1.0\r\n\r\n", 400},
      {"GET http://x/ HTTP/1.1\r\n\r\n", 400},
      {"G(T / HTTP/1.1\r\n\r\n", 400},
      {"GET /\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nBad Header: 1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nA: \x01\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
      {"POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", 413},
      {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400},
  };
  for (const Case& c : cases) {
    HttpRequest r;
    HeadParse p = parse(c.text, &r, lim);
    EXPECT_EQ(p.kind, HeadParse::Bad) << c.text;
    EXPECT_EQ(p.status, c.status) << c.text << " -> " << p.message;
    EXPECT_FALSE(p.message.empty());
  }
}

TEST(ServerHttpParse, ResponseHeadsCarryLengthAndConnection) {
  HttpResponse r;
  r.body = "abc";
  std::string h = response_head(r, true);
  EXPECT_EQ(h.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << h;
  EXPECT_NE(h.find("Content-Length: 3\r\n"), std::string::npos);
  EXPECT_NE(h.find("Connection: keep-alive\r\n"), std::string::npos);
  r.stream = [](StreamSink&) {};
  h = response_head(r, true);
  EXPECT_EQ(h.find("Content-Length"), std::string::npos);
  EXPECT_NE(h.find("Connection: close\r\n"), std::string::npos);
  HttpResponse e = error_response(413, "too big");
  EXPECT_EQ(e.status, 413);
  EXPECT_EQ(e.body, "{\"error\":\"too big\"}\n");
  EXPECT_EQ(percent_decode("%zz%4"), "%zz%4");
}
