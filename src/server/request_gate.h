// What a request must show before the server reads its body or does any work for it: the
// token (when the server has one), a Host and Origin that a web page cannot forge into a
// loopback server (cross-site requests, DNS rebinding), an endpoint that exists with that
// method, and the endpoint's content type and size. Everything here looks at the head alone,
// so the HTTP layer runs it before `100 Continue` and before the first body byte, and an
// unauthenticated client never gets the server to buffer anything.
//
// Browsers can send cross-site POSTs without asking (no CORS preflight) only with the
// content types text/plain, application/x-www-form-urlencoded and multipart/form-data, and
// they always add Origin to them: requiring JSON or octet-stream bodies and refusing foreign
// Origins stops those; checking Host stops a page whose own name was rebound to 127.0.0.1.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "server/http_message.h"

namespace raylight::server {

struct GateConfig {
  std::string token;     // empty: no Authorization needed
  bool loopback = true;  // the server listens on loopback: Host must name a loopback address
  size_t max_json_bytes = 1u << 20;
};

// JsonOrTensors: a JSON body, or a safetensors body whose "request" metadata is that JSON
// (POST /v1/generate with pictures).
enum class BodyKind { None, Json, Tensors, JsonOrTensors };

struct Endpoint {
  std::string allow;  // methods, as the Allow header lists them ("GET, HEAD", "POST")
  BodyKind body = BodyKind::None;
};

// "/v1/jobs/ab" -> {"v1", "jobs", "ab"} (empty segments dropped).
std::vector<std::string> split_path(const std::string& path);
// The endpoint at `segments`, nullopt when there is none.
std::optional<Endpoint> find_endpoint(const std::vector<std::string>& segments);

// nullopt when the request may go on; otherwise the answer to send (400, 401, 403, 404,
// 405, 413 or 415, each with a message naming what is wrong).
std::optional<HttpResponse> gate_request(const GateConfig& config, const HttpRequest& req, size_t content_length);

// The token from `source` (a file's first line or RAYLIGHT_TOKEN) without the whitespace
// around it; an Error when nothing is left or it holds characters a header cannot carry
// (it must be visible ASCII: 0x21 to 0x7e).
std::string checked_token(const std::string& text, const std::string& source);
// Whether an Authorization value carries `token` ("Bearer" in any case, then the token).
bool bearer_matches(const std::string& value, const std::string& token);
// Whether a Host header value names a loopback address (127.0.0.0/8, [::1], localhost),
// with or without a port.
bool loopback_host(const std::string& value);

}  // namespace raylight::server
