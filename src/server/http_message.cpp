// Request-head parsing and response-head writing. The parser is strict where laxness has
// caused request smuggling elsewhere (one Content-Length, no Transfer-Encoding, no line
// folding, no whitespace before a colon) and bounded everywhere else.
#include "server/http_message.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

namespace raylight::server {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Whether a comma-separated header value lists `token` (case-insensitive).
bool lists_token(const std::string& value, std::string_view token) {
  std::string v = lower(value);
  size_t start = 0;
  while (start <= v.size()) {
    size_t comma = v.find(',', start);
    if (comma == std::string::npos) comma = v.size();
    if (trim(std::string_view(v).substr(start, comma - start)) == token) return true;
    start = comma + 1;
  }
  return false;
}

HeadParse bad(int status, std::string message) {
  HeadParse p;
  p.kind = HeadParse::Bad;
  p.status = status;
  p.message = std::move(message);
  return p;
}

}  // namespace

const std::string* HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return &v;
  return nullptr;
}

std::optional<std::string> HttpRequest::query_param(std::string_view name) const {
  std::string_view q = query;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    size_t eq = pair.find('=');
    if (percent_decode(pair.substr(0, eq)) == name)
      return eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

bool HttpRequest::keep_alive() const {
  const std::string* c = header("connection");
  if (minor_version == 0) return c && lists_token(*c, "keep-alive");
  return !(c && lists_token(*c, "close"));
}

std::string percent_decode(std::string_view s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

HeadParse parse_request_head(std::string_view buf, const HttpLimits& limits, HttpRequest* out) {
  const size_t end = buf.find("\r\n\r\n");
  // A bare LF would otherwise leave the head "incomplete" until the idle timeout (a client
  // ending lines with \n alone waits for an answer that never comes): refuse it at once, and
  // a lone CR too (readers disagree on both, the stuff of request smuggling).
  const size_t scan = std::min(buf.size(), end == std::string_view::npos ? buf.size() : end + 4);
  for (size_t i = 0; i < scan; ++i) {
    if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
      return bad(400, "request lines must end with CRLF (\\r\\n), not a bare LF");
    if (buf[i] == '\r' && i + 1 < buf.size() && buf[i + 1] != '\n')
      return bad(400, "request head contains a CR that does not end a line");
  }
  if (end == std::string_view::npos) {
    if (buf.size() > limits.max_head_bytes)
      return bad(431, "request head is larger than " + std::to_string(limits.max_head_bytes) + " bytes");
    return {};
  }
  const size_t head_bytes = end + 4;
  if (head_bytes > limits.max_head_bytes)
    return bad(431, "request head is larger than " + std::to_string(limits.max_head_bytes) + " bytes");
  std::string_view head = buf.substr(0, end);
  for (char c : head)
    if (c == '\0' || (static_cast<unsigned char>(c) < 0x20 && c != '\r' && c != '\n' && c != '\t'))
      return bad(400, "request head contains control characters");

  HttpRequest r;
  // Request line: METHOD SP target SP HTTP/1.x
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return bad(400, "malformed request line");
  std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1),
                   version = line.substr(sp2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), is_token_char))
    return bad(400, "malformed request method");
  if (target.empty() || target.front() != '/' || target.find(' ') != std::string_view::npos)
    return bad(400, "request target must be a path starting with '/'");
  if (version.substr(0, 5) != "HTTP/") return bad(400, "malformed HTTP version");
  if (version == "HTTP/1.1") r.minor_version = 1;
  else if (version == "HTTP/1.0") r.minor_version = 0;
  else return bad(505, "only HTTP/1.0 and HTTP/1.1 are supported");
  r.method = std::string(method);
  r.target = std::string(target);
  const size_t q = target.find('?');
  r.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) r.query = std::string(target.substr(q + 1));

  // Header fields.
  std::string_view rest = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
  while (!rest.empty()) {
    size_t e = rest.find("\r\n");
    std::string_view field = rest.substr(0, e);
    rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 2);
    if (field.empty()) continue;
    if (field.front() == ' ' || field.front() == '\t') return bad(400, "folded header lines are not supported");
    size_t colon = field.find(':');
    if (colon == std::string_view::npos || colon == 0) return bad(400, "malformed header line");
    std::string_view name = field.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), is_token_char)) return bad(400, "malformed header name");
    if (r.headers.size() == limits.max_headers)
      return bad(431, "more than " + std::to_string(limits.max_headers) + " header fields");
    r.headers.emplace_back(lower(name), std::string(trim(field.substr(colon + 1))));
  }

  HeadParse p;
  p.kind = HeadParse::Complete;
  p.head_bytes = head_bytes;
  if (std::count_if(r.headers.begin(), r.headers.end(), [](const auto& h) { return h.first == "host"; }) > 1)
    return bad(400, "more than one Host header");
  if (r.header("transfer-encoding"))
    return bad(501, "chunked or encoded request bodies are not supported; send Content-Length");
  bool seen_length = false;
  for (const auto& [k, v] : r.headers) {
    if (k != "content-length") continue;
    if (v.empty() || v.size() > 18 || !std::all_of(v.begin(), v.end(), ::isdigit))
      return bad(400, "malformed Content-Length '" + v + "'");
    size_t n = std::stoull(v);
    if (seen_length && n != p.content_length) return bad(400, "conflicting Content-Length headers");
    seen_length = true;
    p.content_length = n;
  }
  if (p.content_length > limits.max_body_bytes)
    return bad(413, "request body of " + std::to_string(p.content_length) + " bytes exceeds the limit of " +
                        std::to_string(limits.max_body_bytes) + " bytes");
  if (const std::string* ex = r.header("expect"); ex && lower(*ex) == "100-continue")
    p.expect_continue = true;
  *out = std::move(r);
  return p;
}

const char* status_reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::string response_head(const HttpResponse& r, bool keep_alive) {
  std::string h = "HTTP/1.1 " + std::to_string(r.status) + " " + status_reason(r.status) + "\r\n";
  if (!r.content_type.empty()) h += "Content-Type: " + r.content_type + "\r\n";
  if (!r.stream) h += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  h += "Cache-Control: no-store\r\n";
  for (const auto& [k, v] : r.headers) h += k + ": " + v + "\r\n";
  h += keep_alive && !r.stream && !r.close ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  h += "\r\n";
  return h;
}

HttpResponse error_response(int status, const std::string& message) {
  HttpResponse r;
  r.status = status;
  r.body = nlohmann::json{{"error", message}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  return r;
}

}  // namespace raylight::server
