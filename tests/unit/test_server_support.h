// Helpers for the server tests: start the real `raylight serve` (as a user would, through
// mpirun for several ranks), talk HTTP to it over a plain socket, read event streams, and
// make sure no process is left behind whatever happens (SIGTERM on the test's own death,
// SIGKILL to the whole process tree at the end).
#pragma once

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace server_test {

using Clock = std::chrono::steady_clock;

inline std::string slurp(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

inline bool send_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Reads until the peer closes or the deadline passes; `closed` tells which.
inline std::string read_until_close(int fd, double timeout_s, bool* closed = nullptr) {
  std::string out;
  const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int>(timeout_s * 1000));
  char buf[65536];
  for (;;) {
    int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (ms <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      if (closed) *closed = true;
      return out;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  if (closed) *closed = false;
  return out;
}

struct Reply {
  int status = 0;  // 0: no answer (connection refused or closed early)
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

inline Reply parse_reply(const std::string& raw) {
  Reply r;
  size_t end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) return r;
  r.status = std::atoi(raw.c_str() + 9);
  std::istringstream head(raw.substr(0, end));
  std::string line;
  std::getline(head, line);
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t c = line.find(':');
    if (c == std::string::npos) continue;
    std::string k = line.substr(0, c);
    for (char& ch : k) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    r.headers[k] = line.substr(c + 1 + (c + 1 < line.size() && line[c + 1] == ' ' ? 1 : 0));
  }
  r.body = raw.substr(end + 4);
  if (r.headers.count("content-length")) {
    size_t n = std::stoull(r.headers["content-length"]);
    if (r.body.size() < n) r.status = 0;  // cut short
    else r.body.resize(n);
  }
  return r;
}

// Sends raw bytes and returns whatever comes back before the server closes.
inline std::string raw_exchange(int port, const std::string& bytes, double timeout_s = 60) {
  int fd = connect_to(port);
  if (fd < 0) return "";
  send_all(fd, bytes);
  std::string out = read_until_close(fd, timeout_s);
  ::close(fd);
  return out;
}

// A request with a body gets the content type its endpoint takes (safetensors for
// /v1/sample, JSON elsewhere) unless `headers` name one.
inline Reply http(int port, const std::string& method, const std::string& target, const std::string& body = "",
                  const std::vector<std::string>& headers = {}, double timeout_s = 120) {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  bool typed = false;
  for (const auto& h : headers) {
    req += h + "\r\n";
    typed = typed || h.rfind("Content-Type:", 0) == 0;
  }
  if (!body.empty() && !typed)
    req += target.rfind("/v1/sample", 0) == 0 ? "Content-Type: application/octet-stream\r\n"
                                              : "Content-Type: application/json\r\n";
  if (!body.empty() || method == "POST") req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  return parse_reply(raw_exchange(port, req, timeout_s));
}

// Follows GET /v1/jobs/ID/events; calls on_status for every status event until the stream
// ends (or on_status returns false). Returns every status seen.
inline std::vector<nlohmann::json> follow_events(int port, const std::string& id,
                                                 const std::function<bool(const nlohmann::json&)>& on_status = {},
                                                 double timeout_s = 120) {
  std::vector<nlohmann::json> seen;
  int fd = connect_to(port);
  if (fd < 0) return seen;
  send_all(fd, "GET /v1/jobs/" + id + "/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  std::string buf;
  bool head_done = false;
  const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int>(timeout_s * 1000));
  char chunk[4096];
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) break;
    buf.append(chunk, static_cast<size_t>(n));
    if (!head_done) {
      size_t e = buf.find("\r\n\r\n");
      if (e == std::string::npos) continue;
      buf.erase(0, e + 4);
      head_done = true;
    }
    size_t e;
    bool stop = false;
    while ((e = buf.find("\n\n")) != std::string::npos) {
      std::string event = buf.substr(0, e);
      buf.erase(0, e + 2);
      size_t d = event.find("data: ");
      if (event.rfind("event: status", 0) != 0 || d == std::string::npos) continue;
      seen.push_back(nlohmann::json::parse(event.substr(d + 6)));
      if (on_status && !on_status(seen.back())) stop = true;
    }
    if (stop) break;
  }
  ::close(fd);
  return seen;
}

// Pids of `root` and all its descendants now (from /proc).
inline std::vector<pid_t> process_tree(pid_t root) {
  std::map<pid_t, std::vector<pid_t>> children;
  if (DIR* d = opendir("/proc")) {
    while (dirent* e = readdir(d)) {
      pid_t pid = std::atoi(e->d_name);
      if (pid <= 0) continue;
      std::string stat = slurp("/proc/" + std::string(e->d_name) + "/stat");
      size_t rp = stat.rfind(')');
      if (rp == std::string::npos) continue;
      char state;
      int ppid = 0;
      if (std::sscanf(stat.c_str() + rp + 1, " %c %d", &state, &ppid) == 2) children[ppid].push_back(pid);
    }
    closedir(d);
  }
  std::vector<pid_t> out = {root};
  for (size_t i = 0; i < out.size(); ++i)
    for (pid_t c : children[out[i]]) out.push_back(c);
  return out;
}

inline bool alive(pid_t pid) {
  std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  size_t rp = stat.rfind(')');
  return rp != std::string::npos && stat.size() > rp + 2 && stat[rp + 2] != 'Z';
}

// A `raylight serve` started by the test and always ended by it.
class ServerProcess {
 public:
  ServerProcess() = default;
  ServerProcess(const ServerProcess&) = delete;
  ~ServerProcess() { kill_all(); }

  // Starts the server with `args` plus --listen 127.0.0.1:0 --port-file; `env` adds
  // NAME=VALUE entries to the environment.
  void start(const std::string& dir, const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
    dir_ = dir;
    port_file_ = dir + "/port";
    log_ = dir + "/serve.log";
    std::filesystem::remove(port_file_);
    std::vector<std::string> argv = {RAYLIGHT_BINARY, "serve"};
    argv.insert(argv.end(), args.begin(), args.end());
    bool has_listen = false;
    for (const auto& a : args) has_listen = has_listen || a == "--listen";
    if (!has_listen) argv.insert(argv.end(), {"--listen", "127.0.0.1:0"});
    argv.insert(argv.end(), {"--port-file", port_file_});
    std::vector<char*> av;
    for (auto& a : argv) av.push_back(a.data());
    av.push_back(nullptr);
    std::vector<std::string> envs;
    for (char** e = environ; *e; ++e) envs.emplace_back(*e);
    envs.insert(envs.end(), env.begin(), env.end());
    std::vector<char*> ev;
    for (auto& e : envs) ev.push_back(e.data());
    ev.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // the test dying takes the server with it
      if (::getppid() != parent) ::_exit(127);
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(fd, 2);
      ::execve(av[0], av.data(), ev.data());
      ::_exit(127);
    }
  }

  // Waits for the port file and a healthy answer.
  bool wait_ready(double timeout_s = 90) { return wait_ready_with_token("", timeout_s); }
  bool wait_ready_with_token(const std::string& token, double timeout_s = 90) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int>(timeout_s * 1000));
    while (Clock::now() < deadline) {
      remember_tree();
      if (exited_) return false;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        status_ = status;
        return false;
      }
      std::string p = slurp(port_file_);
      if (!p.empty() && p.back() == '\n') {
        port_ = std::atoi(p.c_str());
        std::vector<std::string> auth;
        if (!token.empty()) auth.push_back("Authorization: Bearer " + token);
        if (http(port_, "GET", "/v1/health", "", auth, 10).status == 200) {
          remember_tree();
          return true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string log() const { return slurp(log_); }
  std::string port_file() const { return port_file_; }

  // The exit status (as a shell reports it), or -1 when still running after timeout_s.
  int wait_exit(double timeout_s) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int>(timeout_s * 1000));
    while (!exited_) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exited_ = true;
        status_ = status;
        break;
      }
      if (Clock::now() >= deadline) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  }

  // Every process of the server ever seen (the ranks under mpirun are in their own groups,
  // so they are tracked by pid rather than by process group).
  void remember_tree() {
    if (pid_ > 0 && !exited_)
      for (pid_t p : process_tree(pid_)) seen_.insert(p);
  }
  // Processes of this server still running.
  std::vector<pid_t> survivors() const {
    std::vector<pid_t> out;
    for (pid_t p : seen_)
      if (p != pid_ && alive(p) && slurp("/proc/" + std::to_string(p) + "/cmdline").find("raylight") != std::string::npos)
        out.push_back(p);
    if (!exited_ && alive(pid_)) out.push_back(pid_);
    return out;
  }

  // Asks the server to stop (shutdown endpoint, with `token` when it needs one), then
  // makes sure: SIGTERM, SIGKILL.
  int stop(double timeout_s = 30, const std::string& token = "") {
    if (pid_ <= 0) return -1;
    remember_tree();
    std::vector<std::string> auth;
    if (!token.empty()) auth.push_back("Authorization: Bearer " + token);
    for (int i = 0; i < 50 && !exited_ && port_ > 0; ++i) {
      if (http(port_, "POST", "/v1/shutdown", "", auth, 10).status != 503) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // at its connection limit
    }
    int rc = wait_exit(timeout_s);
    if (rc < 0) {
      ::kill(pid_, SIGTERM);
      rc = wait_exit(10);
    }
    kill_all();
    return rc;
  }

  void kill_all() {
    if (pid_ <= 0) return;
    remember_tree();
    for (pid_t p : survivors()) ::kill(p, SIGKILL);
    if (!exited_) wait_exit(10);
  }

 private:
  std::string dir_, port_file_, log_;
  pid_t pid_ = -1;
  int port_ = 0;
  bool exited_ = false;
  int status_ = 0;
  std::set<pid_t> seen_;
};

// Waits (up to timeout_s) until the server has a model loaded.
// Waits until a model is loaded and its load job has finished (the model shows before the
// job ends; a request checked in between would be queued behind the job, not checked).
inline bool wait_model(int port, double timeout_s = 60) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int>(timeout_s * 1000));
  while (Clock::now() < deadline) {
    Reply r = http(port, "GET", "/v1/models", "", {}, 10);
    nlohmann::json j = r.json();
    nlohmann::json health = http(port, "GET", "/v1/health", "", {}, 10).json();
    const bool idle = health.is_object() && health.contains("busy") && health["busy"] == false;
    if (r.status == 200 && j.is_object() && j.contains("model") && !j["model"].is_null() && idle) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// A private temporary directory for a test suite.
inline std::string make_temp_dir(const std::string& name) {
  std::string tmpl = (std::filesystem::temp_directory_path() / ("raylight_" + name + "_XXXXXX")).string();
  char* d = ::mkdtemp(tmpl.data());
  return d ? std::string(d) : std::string();
}

}  // namespace server_test

#include "io/safetensors.h"
#include "server/safetensors_body.h"

namespace server_test {

// A /v1/sample body: tensors plus the parameters as JSON in the metadata.
inline std::string sample_body(const nlohmann::json& params,
                               const std::vector<std::pair<std::string, raylight::Tensor>>& tensors = {}) {
  return raylight::server::encode_safetensors(tensors, {{"request", params.is_null() ? "{}" : params.dump()}});
}

// The 'latent' tensor of a safetensors reply body (undefined when there is none).
inline raylight::Tensor latent_of(const std::string& body) {
  try {
    raylight::server::TensorBundle b = raylight::server::decode_safetensors(body);
    if (const raylight::Tensor* t = b.find("latent")) return *t;
  } catch (const std::exception&) {
  }
  return {};
}

inline bool same_bytes(const raylight::Tensor& a, const raylight::Tensor& b) {
  return a.defined() && b.defined() && a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// `raylight sample FLAGS` into dir/name; the latent, or undefined when it failed.
inline raylight::Tensor cli_sample(const std::string& dir, const std::string& flags, const std::string& name) {
  const std::string out = dir + "/" + name + ".safetensors";
  const std::string cmd = std::string(RAYLIGHT_BINARY) + " sample " + flags + " --out " + out + " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) return {};
  return raylight::SafetensorsFile::open(out)->tensor("latent").clone();
}

}  // namespace server_test
