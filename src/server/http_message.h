// HTTP/1.1 messages as the server sees them: parsing a request head and writing a
// response head. Kept apart from the sockets so the parser (the part that faces untrusted
// bytes) is a pure function with unit tests. Only what the API needs is accepted: origin-form
// targets, Content-Length bodies (no chunked uploads), bounded header counts and sizes;
// anything else is an error carrying the 4xx/5xx status to answer with.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace raylight::server {

struct HttpLimits {
  size_t max_head_bytes = 16 * 1024;   // request line + headers
  size_t max_headers = 64;
  size_t max_body_bytes = 512u << 20;  // tensor bodies (latents, conditioning, noise)
  size_t max_json_bytes = 1u << 20;    // JSON bodies
};

struct HttpRequest {
  std::string method, target, path, query;
  int minor_version = 1;  // HTTP/1.x
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;
  std::string peer;  // "address:port" of the client, for logs

  // The first header called `name` (lower case), or nullptr.
  const std::string* header(std::string_view name) const;
  // The percent-decoded value of query parameter `name`.
  std::optional<std::string> query_param(std::string_view name) const;
  // Whether the client wants the connection kept open after the response.
  bool keep_alive() const;
};

struct HeadParse {
  enum Kind { Incomplete, Complete, Bad } kind = Incomplete;
  size_t head_bytes = 0;       // Complete: bytes of the head including the blank line
  size_t content_length = 0;   // Complete: body bytes that follow
  bool expect_continue = false;
  int status = 0;              // Bad: the status to answer with
  std::string message;         // Bad: why
};

// Parses the head at the start of `buf` into `out`. Incomplete means more bytes are needed
// (and `buf` is still within the limits); Bad carries 400, 413, 431, 501 or 505.
HeadParse parse_request_head(std::string_view buf, const HttpLimits& limits, HttpRequest* out);

// "%41b+c" -> "Ab c" (query strings); malformed escapes are kept as they are.
std::string percent_decode(std::string_view s);

// Where a streamed response (server-sent events) writes; write() returns false once the
// client has gone or the server is stopping, and the stream should then end.
class StreamSink {
 public:
  virtual ~StreamSink() = default;
  virtual bool write(std::string_view bytes) = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, the head is sent without Content-Length and `stream` writes the body; the
  // connection closes when it returns.
  std::function<void(StreamSink&)> stream;
  bool close = false;  // close the connection after this response
};

const char* status_reason(int status);
// Status line and headers for `r` (Content-Length from r.body unless streaming).
std::string response_head(const HttpResponse& r, bool keep_alive);
// {"error": message} with `status`.
HttpResponse error_response(int status, const std::string& message);

}  // namespace raylight::server
