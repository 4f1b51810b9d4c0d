// The checks on a request's head without a server (request_gate.h): the token, Host and
// Origin on a loopback server, endpoints and methods, content types, and client-named files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "server/api.h"
#include "models/registry.h"
#include "server/client_files.h"
#include "server/job_estimate.h"
#include "server/request_gate.h"

using namespace raylight;
using namespace raylight::server;

namespace {

HttpRequest request(const std::string& method, const std::string& path,
                    std::vector<std::pair<std::string, std::string>> headers = {{"host", "127.0.0.1:8690"}}) {
  HttpRequest r;
  r.method = method;
  r.path = path;
  r.target = path;
  r.headers = std::move(headers);
  return r;
}

// The status gate_request answers with (0: the request may go on) and its message.
int gate(const GateConfig& c, const HttpRequest& r, size_t length = 0, std::string* message = nullptr) {
  std::optional<HttpResponse> refused = gate_request(c, r, length);
  if (refused && message) *message = refused->body;
  return refused ? refused->status : 0;
}

std::string refusal(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(accepted)";
}

}  // namespace

TEST(ServerGate, TheTokenIsCheckedOnTheHead) {
  GateConfig c;
  c.token = "s3cret";
  auto with_auth = [](std::vector<std::string> values) {
    std::vector<std::pair<std::string, std::string>> h = {{"host", "127.0.0.1"}};
    for (auto& v : values) h.emplace_back("authorization", v);
    return request("GET", "/v1/health", h);
  };
  EXPECT_EQ(gate(c, request("GET", "/v1/health")), 401);
  EXPECT_EQ(gate(c, with_auth({"Bearer s3cret"})), 0);
  // The scheme is case-insensitive (RFC 9110); more than one space may follow it.
  EXPECT_EQ(gate(c, with_auth({"bearer s3cret"})), 0);
  EXPECT_EQ(gate(c, with_auth({"BEARER   s3cret"})), 0);
  EXPECT_EQ(gate(c, with_auth({"Bearer s3cre"})), 401);
  EXPECT_EQ(gate(c, with_auth({"Bearer s3crett"})), 401);
  EXPECT_EQ(gate(c, with_auth({"Basic s3cret"})), 401);
  EXPECT_EQ(gate(c, with_auth({"Bearers3cret"})), 401);
  EXPECT_EQ(gate(c, with_auth({"Bearer"})), 401);
  // Two Authorization headers are ambiguous, whichever comes first.
  EXPECT_EQ(gate(c, with_auth({"Bearer s3cret", "Bearer wrong"})), 400);
  EXPECT_EQ(gate(c, with_auth({"Bearer wrong", "Bearer s3cret"})), 400);
  EXPECT_EQ(gate(c, with_auth({"Bearer s3cret", "Bearer s3cret"})), 400);
  // Without the token, nothing about the endpoints is revealed: 401 before 404.
  EXPECT_EQ(gate(c, request("GET", "/v1/nothing")), 401);
  EXPECT_EQ(gate(GateConfig{}, request("GET", "/v1/nothing")), 404);
}

TEST(ServerGate, TokensMustBeOneVisibleWord) {
  EXPECT_EQ(checked_token("  s3cret \r\n", "RAYLIGHT_TOKEN"), "s3cret");
  EXPECT_NE(refusal([] { checked_token("   ", "RAYLIGHT_TOKEN"); }).find("RAYLIGHT_TOKEN is empty or only whitespace"),
            std::string::npos);
  EXPECT_NE(refusal([] { checked_token("\t\n", "--token-file t"); }).find("only whitespace"), std::string::npos);
  EXPECT_NE(refusal([] { checked_token("two words", "RAYLIGHT_TOKEN"); }).find("one word"), std::string::npos);
  EXPECT_NE(refusal([] { checked_token("caf\xc3\xa9", "RAYLIGHT_TOKEN"); }).find("visible ASCII"), std::string::npos);
}

TEST(ServerGate, LoopbackServersRefuseWebPagesAndReboundNames) {
  GateConfig c;  // loopback, no token: what a web page in the user's browser could reach
  EXPECT_EQ(gate(c, request("POST", "/v1/shutdown")), 0);
  for (const char* host : {"127.0.0.1", "127.0.0.1:8690", "localhost:8690", "LOCALHOST", "[::1]:8690", "127.1.2.3"})
    EXPECT_EQ(gate(c, request("GET", "/v1/health", {{"host", host}})), 0) << host;
  // DNS rebinding: the page's own name now points at 127.0.0.1, and its requests say so.
  for (const char* host : {"evil.example:8690", "evil.example", "127.0.0.1.evil.example", "localhost.evil:1",
                           "[::1", "[::1]x", "127.0.0.1:", "127.0.0.1:80:80", "0.0.0.0:8690", "10.0.0.1"})
    EXPECT_EQ(gate(c, request("GET", "/v1/health", {{"host", host}})), 403) << host;
  // A page on another origin (cross-site POSTs carry Origin; fetch metadata says cross-site).
  std::string msg;
  EXPECT_EQ(gate(c, request("POST", "/v1/shutdown", {{"host", "127.0.0.1:8690"}, {"origin", "http://evil.example"}}),
                 0, &msg),
            403);
  EXPECT_NE(msg.find("http://evil.example"), std::string::npos);
  EXPECT_EQ(gate(c, request("POST", "/v1/shutdown", {{"host", "127.0.0.1:8690"}, {"origin", "null"}})), 403);
  EXPECT_EQ(gate(c, request("POST", "/v1/shutdown", {{"host", "127.0.0.1:8690"}, {"sec-fetch-site", "cross-site"}})),
            403);
  EXPECT_EQ(gate(c, request("GET", "/v1/health", {{"host", "127.0.0.1:8690"}, {"sec-fetch-site", "same-site"}})), 403);
  EXPECT_EQ(gate(c, request("GET", "/v1/health", {{"host", "127.0.0.1:8690"}, {"sec-fetch-site", "none"}})), 0);
  EXPECT_EQ(gate(c, request("GET", "/v1/health", {{"host", "127.0.0.1:8690"}, {"origin", "http://127.0.0.1:8690"}})), 0);
  // Servers for other machines are reached by names the server cannot know: Host is not
  // checked there (their token protects them), Origin still is.
  GateConfig remote;
  remote.loopback = false;
  remote.token = "t";
  EXPECT_EQ(gate(remote, request("GET", "/v1/health", {{"host", "gpu-box:8690"}, {"authorization", "Bearer t"}})), 0);
  EXPECT_EQ(gate(remote, request("GET", "/v1/health", {{"host", "gpu-box:8690"}, {"authorization", "Bearer t"},
                                                       {"origin", "http://evil.example"}})),
            403);
}

TEST(ServerGate, BodiesNeedTheirEndpointsContentType) {
  GateConfig c;
  c.max_json_bytes = 1000;
  auto typed = [](const std::string& method, const std::string& path, const char* type) {
    std::vector<std::pair<std::string, std::string>> h = {{"host", "127.0.0.1"}};
    if (type) h.emplace_back("content-type", type);
    return request(method, path, h);
  };
  EXPECT_EQ(gate(c, typed("POST", "/v1/models/load", "application/json"), 20), 0);
  EXPECT_EQ(gate(c, typed("POST", "/v1/models/load", "Application/JSON; charset=utf-8"), 20), 0);
  EXPECT_EQ(gate(c, typed("POST", "/v1/models/load", "text/plain"), 20), 415);  // what a form can send
  EXPECT_EQ(gate(c, typed("POST", "/v1/models/load", "application/x-www-form-urlencoded"), 20), 415);
  EXPECT_EQ(gate(c, typed("POST", "/v1/models/load", nullptr), 20), 415);
  EXPECT_EQ(gate(c, typed("POST", "/v1/generate", "multipart/form-data; boundary=x"), 20), 415);
  EXPECT_EQ(gate(c, typed("POST", "/v1/generate", "application/json"), 1001), 413);  // from the head alone
  EXPECT_EQ(gate(c, typed("POST", "/v1/sample", "application/octet-stream"), 5000), 0);
  EXPECT_EQ(gate(c, typed("POST", "/v1/sample", "text/plain"), 5000), 415);
  EXPECT_EQ(gate(c, typed("POST", "/v1/sample", nullptr), 5000), 415);
  EXPECT_EQ(gate(c, typed("POST", "/v1/sample", nullptr), 0), 0);  // answered 411 later
  // Endpoints without a body: curl -X POST works; a form's text/plain does not.
  EXPECT_EQ(gate(c, typed("POST", "/v1/shutdown", nullptr), 0), 0);
  EXPECT_EQ(gate(c, typed("POST", "/v1/shutdown", "application/json"), 0), 0);
  EXPECT_EQ(gate(c, typed("POST", "/v1/shutdown", "text/plain"), 0), 415);
  EXPECT_EQ(gate(c, typed("POST", "/v1/shutdown", nullptr), 3), 400);
  EXPECT_EQ(gate(c, typed("POST", "/v1/jobs/abc/cancel", "text/plain"), 0), 415);
  EXPECT_EQ(gate(c, typed("GET", "/v1/health", nullptr), 10), 400);
}

TEST(ServerGate, EndpointsAndMethods) {
  GateConfig c;
  EXPECT_EQ(gate(c, request("GET", "/")), 0);
  EXPECT_EQ(gate(c, request("HEAD", "/v1/health")), 0);
  EXPECT_EQ(gate(c, request("HEAD", "/v1/jobs/x/result")), 0);
  EXPECT_EQ(gate(c, request("DELETE", "/v1/jobs/x")), 0);
  std::optional<HttpResponse> r = gate_request(c, request("HEAD", "/v1/sample"), 0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  ASSERT_EQ(r->headers.size(), 1u);
  EXPECT_EQ(r->headers[0], (std::pair<std::string, std::string>("Allow", "POST")));
  EXPECT_EQ(gate(c, request("PUT", "/v1/health")), 405);
  EXPECT_EQ(gate(c, request("GET", "/v1/jobs/x/other")), 404);
  EXPECT_EQ(gate(c, request("GET", "/v2/health")), 404);
  EXPECT_EQ(split_path("//v1///jobs/"), (std::vector<std::string>{"v1", "jobs"}));
}

TEST(ServerClientFiles, PathsWithNulAndOutsideTheModelFoldersAreRefused) {
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("raylight_client_files_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "models" / "sub");
  fs::create_directories(root / "elsewhere");
  std::ofstream(root / "models" / "sub" / "m.safetensors") << "x";
  std::ofstream(root / "elsewhere" / "secret") << "x";
  fs::create_symlink(root / "elsewhere" / "secret", root / "models" / "link.safetensors");
  const std::vector<std::string> dirs = {(root / "models").string()};
  const std::string inside = (root / "models" / "sub" / "m.safetensors").string();

  EXPECT_EQ(refusal([&] { check_client_path("model", inside, dirs); }), "(accepted)");
  EXPECT_EQ(refusal([&] { check_client_path("model", "tiny", dirs); }), "(accepted)");
  EXPECT_EQ(refusal([&] { check_client_path("model", (root / "models" / "sub" / ".." / "sub" / "m.safetensors").string(), dirs); }),
            "(accepted)");
  for (const fs::path& outside : {root / "elsewhere" / "secret", root / "models" / "link.safetensors",
                                  root / "models" / ".." / "elsewhere" / "secret", fs::path("/etc/passwd"),
                                  root / "models2" / "x"})
    EXPECT_NE(refusal([&] { check_client_path("vae", outside.string(), dirs); }).find("is outside the folders"),
              std::string::npos)
        << outside;
  // "/x/m.safetensors\0junk" would open /x/m.safetensors: refused with or without folders.
  const std::string nul = inside + std::string(1, '\0') + ".txt";
  EXPECT_NE(refusal([&] { check_client_path("model", nul, {}); }).find("contains a NUL byte"), std::string::npos);
  EXPECT_NE(refusal([&] { check_client_path("model", nul, dirs); }).find("contains a NUL byte"), std::string::npos);
  EXPECT_NE(refusal([&] { check_client_path("model", "", {}); }).find("empty"), std::string::npos);
  fs::remove_all(root);
}

TEST(ServerClientFiles, WhatAFileHoldsNeverReachesTheMessage) {
  namespace fs = std::filesystem;
  const fs::path file = fs::temp_directory_path() / ("raylight_not_safetensors_" + std::to_string(::getpid()));
  std::ofstream(file, std::ios::binary) << "root:$6$hunter2hunter2:19000:0:99999:7:::\n";
  const std::string msg = refusal([&] {
    open_client_file("model", file.string(), [&] { throw Error("safetensors: header length 3619251681095544690 root:$6$"); });
  });
  EXPECT_NE(msg.find("is not a safetensors file"), std::string::npos) << msg;
  EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
  EXPECT_EQ(msg.find("hunter2"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("3619251681095544690"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("root:"), std::string::npos) << msg;
  EXPECT_NE(refusal([&] { open_client_file("vae", "/no/such/file", [] {}); }).find("does not exist"), std::string::npos);
  fs::remove(file);
}

TEST(ServerSubmission, AServerShuttingDownTakesNoJobs) {
  JobBoard board(4, 4);
  ServerState state(1);
  bool stopping = false;
  Api api(ApiConfig{}, board, state, [] {}, [&] { return stopping; });
  auto unload = [&] {
    HttpRequest r = request("POST", "/v1/models/unload",
                            {{"host", "127.0.0.1"}, {"content-type", "application/json"}});
    r.body = "{}";
    return api.handle(r);
  };
  EXPECT_EQ(unload().status, 202);
  stopping = true;  // POST /v1/shutdown, SIGTERM or the parent's end: jobs now would only be cancelled
  HttpResponse r = unload();
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("shutting down"), std::string::npos) << r.body;
  EXPECT_EQ(board.list().size(), 1u);
  HttpRequest health = request("GET", "/v1/health");
  EXPECT_NE(api.handle(health).body.find("\"stopping\""), std::string::npos);
}

TEST(ServerJobEstimate, BoundsWhatAJobHoldsAndRefusesWhatCannotFit) {
  auto spec = denoiser_spec(*open_store("tiny", PartKind::Denoiser), "tiny");
  ParallelLayout one;
  const Shape small = spec->latent_shape({64, 64, 5}), huge = spec->latent_shape({8192, 8192, 4097});
  const JobMemory s = estimate_job_memory(small, 1, *spec, one, true);
  EXPECT_GT(s.latent_bytes, 16.0 * 2 * 8 * 8 * 4);  // at least the latent itself
  EXPECT_LT(s.total(), 64.0 * (1 << 20));
  const JobMemory h = estimate_job_memory(huge, 1, *spec, one, true);
  EXPECT_GT(h.latent_bytes, 64.0 * (1ull << 30));  // its latent alone is 64 GiB
  EXPECT_EQ(estimate_job_memory(huge, 1, *spec, one, false).activation_bytes, 0.0);  // on a GPU: not host memory
  EXPECT_GT(estimate_job_memory(small, 4, *spec, one, true).latent_bytes, 3.9 * s.latent_bytes);
  ParallelLayout split;
  split.ulysses = 2;
  EXPECT_LT(estimate_job_memory(small, 1, *spec, split, true).activation_bytes, 0.51 * s.activation_bytes);
  EXPECT_EQ(refusal([&] { check_job_memory(s, 1e9); }), "(accepted)");
  const std::string msg = refusal([&] { check_job_memory(h, 16.0 * (1ull << 30)); });
  EXPECT_NE(msg.find("this job needs about"), std::string::npos) << msg;
  EXPECT_NE(msg.find("16.0 GiB this machine has"), std::string::npos) << msg;
  EXPECT_GT(machine_memory_bytes(), 0.0);
}
