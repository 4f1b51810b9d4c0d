// The checks on a request's head (see request_gate.h), in the order a client is best told
// about them: a malformed head, then where it comes from, then the token, then the endpoint.
#include "server/request_gate.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "server/listen_address.h"

namespace raylight::server {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

size_t count_headers(const HttpRequest& req, const char* name) {
  return static_cast<size_t>(std::count_if(req.headers.begin(), req.headers.end(),
                                           [&](const auto& h) { return h.first == name; }));
}

// "application/JSON; charset=utf-8" -> "application/json".
std::string media_type(const std::string& value) {
  std::string t = value.substr(0, value.find(';'));
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.pop_back();
  return lower(t);
}

// Constant-time comparison, so response timing says nothing about the token.
bool same_secret(const std::string& a, const std::string& b) {
  if (b.empty()) return false;
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % b.size()]);
  return diff == 0;
}

HttpResponse refuse(int status, const std::string& message) { return error_response(status, message); }

}  // namespace

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 1;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (slash > start) parts.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
}

std::optional<Endpoint> find_endpoint(const std::vector<std::string>& p) {
  const Endpoint get{"GET, HEAD", BodyKind::None}, post{"POST", BodyKind::None};
  const size_t n = p.size();
  if (n == 0 || (n == 1 && p[0] == "v1")) return get;
  if (p[0] != "v1") return std::nullopt;
  if (n == 2) {
    if (p[1] == "health" || p[1] == "memory" || p[1] == "models" || p[1] == "jobs") return get;
    if (p[1] == "sample") return Endpoint{"POST", BodyKind::Tensors};
    if (p[1] == "generate") return Endpoint{"POST", BodyKind::JsonOrTensors};
    if (p[1] == "shutdown") return post;
  }
  if (n == 3 && p[1] == "models" && (p[2] == "load" || p[2] == "unload" || p[2] == "loras"))
    return Endpoint{"POST", BodyKind::Json};
  // The part endpoints (part_jobs.h).
  if (n == 3 && p[1] == "text" && p[2] == "encode") return Endpoint{"POST", BodyKind::Json};
  if (n == 3 && p[1] == "vae" && (p[2] == "decode" || p[2] == "encode")) return Endpoint{"POST", BodyKind::Tensors};
  if (n >= 3 && n <= 4 && p[1] == "jobs") {  // the job's id is looked up later (404 "no job")
    if (n == 3) return Endpoint{"GET, HEAD, DELETE", BodyKind::None};
    if (p[3] == "cancel") return post;
    if (p[3] == "events" || p[3] == "result") return get;
  }
  return std::nullopt;
}

std::string checked_token(const std::string& text, const std::string& source) {
  const size_t b = text.find_first_not_of(" \t\r\n"), e = text.find_last_not_of(" \t\r\n");
  if (b == std::string::npos) fail(source, " is empty or only whitespace: the token would not protect anything");
  std::string token = text.substr(b, e - b + 1);
  for (char c : token)
    if (c < 0x21 || c > 0x7e)
      fail(source, " holds a space or a character outside visible ASCII; a token must be one word that an "
                   "HTTP header can carry");
  return token;
}

bool bearer_matches(const std::string& value, const std::string& token) {
  const size_t sp = value.find(' ');
  if (sp == std::string::npos || lower(value.substr(0, sp)) != "bearer") return false;
  const size_t start = value.find_first_not_of(' ', sp);
  return start != std::string::npos && same_secret(value.substr(start), token);
}

bool loopback_host(const std::string& value) {
  std::string host = lower(value), port;
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    if (close == std::string::npos) return false;
    port = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!port.empty() && port.front() != ':') return false;
    if (!port.empty()) port.erase(0, 1);
  } else if (const size_t colon = host.find(':'); colon != std::string::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
    if (port.empty()) return false;
  }
  if (!std::all_of(port.begin(), port.end(), ::isdigit) || port.size() > 5) return false;
  return host == "localhost" || is_loopback(host);
}

std::optional<HttpResponse> gate_request(const GateConfig& config, const HttpRequest& req, size_t content_length) {
  for (const char* once : {"authorization", "content-type", "origin"})
    if (count_headers(req, once) > 1) return refuse(400, std::string("more than one ") + once + " header");

  // Where the request comes from.
  const std::string* host = req.header("host");
  if (config.loopback && host && !loopback_host(*host))
    return refuse(403, "Host '" + *host + "' does not name this loopback server (127.0.0.1, [::1] or "
                       "localhost); a web page whose name points here is refused");
  if (const std::string* origin = req.header("origin")) {
    if (!host || lower(*origin) != "http://" + lower(*host))
      return refuse(403, "requests from web pages (Origin '" + *origin + "') are refused");
  }
  if (const std::string* site = req.header("sec-fetch-site"); site && *site != "same-origin" && *site != "none")
    return refuse(403, "requests from web pages (Sec-Fetch-Site '" + *site + "') are refused");

  if (!config.token.empty()) {
    const std::string* auth = req.header("authorization");
    if (!auth || !bearer_matches(*auth, config.token)) {
      HttpResponse r = refuse(401, "this server needs 'Authorization: Bearer <token>'");
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      return r;
    }
  }

  // The endpoint, its method and its body.
  const std::optional<Endpoint> ep = find_endpoint(split_path(req.path));
  if (!ep) return refuse(404, "no such endpoint: " + req.path + " (GET /v1 lists them)");
  const std::string allow = ", " + ep->allow + ",";
  if (allow.find(", " + req.method + ",") == std::string::npos) {
    HttpResponse r = refuse(405, "method not allowed; use " + ep->allow);
    r.headers.emplace_back("Allow", ep->allow);
    return r;
  }
  const std::string* ct = req.header("content-type");
  const std::string type = ct ? media_type(*ct) : "";
  switch (ep->body) {
    case BodyKind::None:
      if (content_length > 0) return refuse(400, req.method + " " + req.path + " takes no body");
      if (req.method == "POST" && ct && type != "application/json")
        return refuse(415, "Content-Type '" + *ct + "' is not accepted here; send no body (or application/json)");
      break;
    case BodyKind::Json:
      if (content_length > config.max_json_bytes)
        return refuse(413, "JSON body of " + std::to_string(content_length) + " bytes exceeds the limit of " +
                               std::to_string(config.max_json_bytes));
      if ((content_length > 0 || ct) && type != "application/json")
        return refuse(415, "send this body as Content-Type: application/json" +
                               (ct ? " (not '" + *ct + "')" : std::string()));
      break;
    case BodyKind::JsonOrTensors:
      if (type == "application/octet-stream") break;
      if (content_length > config.max_json_bytes)
        return refuse(413, "JSON body of " + std::to_string(content_length) + " bytes exceeds the limit of " +
                               std::to_string(config.max_json_bytes) + " (send pictures as a safetensors body)");
      if ((content_length > 0 || ct) && type != "application/json")
        return refuse(415, "send this body as Content-Type: application/json, or application/octet-stream (a "
                           "safetensors body with pictures)" + (ct ? " (not '" + *ct + "')" : std::string()));
      break;
    case BodyKind::Tensors:
      if ((content_length > 0 || ct) && type != "application/octet-stream")
        return refuse(415, "send the safetensors body as Content-Type: application/octet-stream" +
                               (ct ? " (not '" + *ct + "')" : std::string()));
      break;
  }
  return std::nullopt;
}

}  // namespace raylight::server
