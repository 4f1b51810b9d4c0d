// Sockets for the HTTP server. Every blocking call is a poll() on the socket plus the
// "wake" pipe: stop() writes the pipe once and never drains it, so every thread waiting
// anywhere wakes at once and sees the server stopping. Connection threads are detached and
// share the server's State through a shared_ptr, so a thread that outlives stop() touches
// nothing freed.
#include "server/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "core/error.h"

namespace raylight::server {

using Clock = std::chrono::steady_clock;

struct HttpServer::State {
  HttpServerOptions options;
  Handler handler;
  HeadCheck head_check;
  int listen_fd = -1;
  int wake[2] = {-1, -1};
  int port = 0;
  std::atomic<bool> stopping{false};
  std::atomic<bool> force{false};  // grace period over: sinks refuse writes
  std::thread acceptor;
  std::mutex mu;
  std::condition_variable idle;  // signalled when a connection ends or a body is done
  struct Conn {
    Clock::time_point since;
    bool admitted = false;  // one of its request heads passed the head check
    bool evicted = false;   // displaced by a newer connection; its thread is ending
  };
  std::map<int, Conn> conns;  // open connections by socket
  size_t body_bytes = 0;      // bodies being received now (reserved before the first byte)

  ~State() {
    if (listen_fd >= 0) ::close(listen_fd);
    for (int fd : wake)
      if (fd >= 0) ::close(fd);
  }
};

namespace {

using State = HttpServer::State;

int ms_until(Clock::time_point deadline) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return ms < 0 ? 0 : static_cast<int>(std::min<long long>(ms, 1 << 30));
}

enum class Wait { Ready, Timeout, Stopped, Error };

// Waits until `fd` is ready for `events`, the deadline passes or the server stops (at
// once with `leave_on_stop`, else only once the grace period is over).
Wait wait_fd(State& s, int fd, short events, Clock::time_point deadline, bool leave_on_stop = false) {
  for (;;) {
    pollfd p[2] = {{fd, events, 0}, {s.wake[0], POLLIN, 0}};
    int n = ::poll(p, 2, ms_until(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Wait::Error;
    if (n == 0) return Clock::now() >= deadline ? Wait::Timeout : Wait::Ready;
    if (p[0].revents & (events | POLLHUP | POLLERR)) return Wait::Ready;
    if (p[1].revents) {
      if (s.force || leave_on_stop) return Wait::Stopped;
      // Stopping but still in the grace period: keep waiting, at most briefly.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
  }
}

Clock::time_point after(double seconds) {
  return Clock::now() + std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
}

// Sends everything or returns false (client gone, too slow, or server forced down).
bool send_all(State& s, int fd, std::string_view data) {
  while (!data.empty()) {
    if (s.force) return false;
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (wait_fd(s, fd, POLLOUT, after(s.options.idle_timeout_s)) != Wait::Ready) return false;
      continue;
    }
    return false;
  }
  return true;
}

class SocketSink final : public StreamSink {
 public:
  SocketSink(State& s, int fd) : s_(s), fd_(fd) {}
  bool write(std::string_view bytes) override {
    if (s_.force) return false;
    return send_all(s_, fd_, bytes);
  }

 private:
  State& s_;
  int fd_;
};

// HEAD requests get the head alone (its Content-Length is the body's a GET would get).
void send_response(State& s, int fd, const HttpResponse& r, bool keep_alive, bool head_only = false) {
  std::string out = response_head(r, keep_alive);
  if (!r.stream && !head_only) out += r.body;
  send_all(s, fd, out);
}

// A share of State::body_bytes for one request body, given back when it goes out of scope.
class BodyBudget {
 public:
  BodyBudget(State& s, size_t bytes) : s_(s), bytes_(bytes) {}
  ~BodyBudget() {
    if (!held_) return;
    std::lock_guard<std::mutex> lock(s_.mu);
    s_.body_bytes -= bytes_;
    s_.idle.notify_all();
  }
  // Waits until the body fits beside the others being received (false: not by the deadline).
  bool reserve(Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(s_.mu);
    const size_t cap = s_.options.max_body_total_bytes;
    if (!s_.idle.wait_until(lock, deadline, [&] { return s_.stopping || s_.body_bytes + bytes_ <= cap; }) ||
        s_.stopping)
      return false;
    s_.body_bytes += bytes_;
    held_ = true;
    return true;
  }

 private:
  State& s_;
  size_t bytes_;
  bool held_ = false;
};

// Appends what arrives (at most `max` bytes) to buf, waiting until the deadline.
enum class Read { Ok, Closed, Timeout };
Read read_some(State& s, int fd, std::string& buf, size_t max, Clock::time_point deadline,
               bool leave_on_stop = false) {
  if (wait_fd(s, fd, POLLIN, deadline, leave_on_stop) != Wait::Ready) return Clock::now() >= deadline ? Read::Timeout : Read::Closed;
  char chunk[64 * 1024];
  for (;;) {
    ssize_t n = ::recv(fd, chunk, std::min(sizeof chunk, max), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Read::Ok;  // spurious wake
    if (n <= 0) return Read::Closed;
    buf.append(chunk, static_cast<size_t>(n));
    return Read::Ok;
  }
}

void serve_connection(State& s, int fd, const std::string& peer) {
  const HttpLimits& lim = s.options.limits;
  std::string buf;  // bytes received and not yet consumed (pipelined requests stay here)
  bool admitted = false;
  const auto first_head_deadline = after(s.options.head_timeout_s);
  for (;;) {
    HttpRequest req;
    HeadParse head;
    auto idle_deadline = after(s.options.idle_timeout_s);
    auto request_deadline = after(s.options.request_timeout_s);
    bool begun = !buf.empty();
    for (;;) {
      head = parse_request_head(buf, lim, &req);
      if (head.kind != HeadParse::Incomplete) break;
      if (s.stopping && !begun) return;  // idle connection while stopping: just close
      auto deadline = begun ? std::min(idle_deadline, request_deadline) : idle_deadline;
      if (!admitted) deadline = std::min(deadline, first_head_deadline);
      Read r = read_some(s, fd, buf, lim.max_head_bytes + 1, deadline, !begun);
      if (r == Read::Timeout && begun)
        send_response(s, fd, error_response(408, "timed out waiting for the request head"), false);
      if (r != Read::Ok) return;
      if (!begun) request_deadline = after(s.options.request_timeout_s);
      begun = true;
      idle_deadline = after(s.options.idle_timeout_s);
    }
    if (head.kind == HeadParse::Bad) {
      send_response(s, fd, error_response(head.status, head.message), false);
      return;
    }
    req.peer = peer;
    const bool head_only = req.method == "HEAD";
    if (s.head_check) {
      if (std::optional<HttpResponse> refused = s.head_check(req, head.content_length)) {
        send_response(s, fd, *refused, false, head_only);
        return;
      }
    }
    if (!admitted) {
      admitted = true;
      std::lock_guard<std::mutex> lock(s.mu);
      s.conns[fd].admitted = true;
    }
    BodyBudget budget(s, head.content_length);
    if (head.content_length > 0 && !budget.reserve(after(s.options.idle_timeout_s))) {
      HttpResponse busy = error_response(503, "the server is receiving other large request bodies; try again");
      busy.headers.emplace_back("Retry-After", "2");
      send_response(s, fd, busy, false, head_only);
      return;
    }
    if (head.expect_continue && head.content_length > buf.size() - head.head_bytes &&
        !send_all(s, fd, "HTTP/1.1 100 Continue\r\n\r\n"))
      return;
    // Body: exactly Content-Length bytes.
    req.body.reserve(head.content_length);
    const size_t have = std::min(buf.size() - head.head_bytes, head.content_length);
    req.body.append(buf, head.head_bytes, have);
    buf.erase(0, head.head_bytes + have);
    while (req.body.size() < head.content_length) {
      Read r = read_some(s, fd, req.body, head.content_length - req.body.size(),
                         std::min(after(s.options.idle_timeout_s), request_deadline));
      if (r == Read::Timeout)
        send_response(s, fd, error_response(408, "timed out waiting for the request body"), false);
      if (r != Read::Ok) return;
    }
    HttpResponse resp;
    try {
      resp = s.handler(req);
    } catch (const std::exception& e) {
      resp = error_response(500, std::string("internal error: ") + e.what());
    }
    req.body = std::string();  // the body's memory goes with its budget
    const bool keep = req.keep_alive() && !resp.close && !resp.stream && !s.stopping;
    if (resp.stream && head_only) {
      send_response(s, fd, resp, false, true);
      return;
    }
    if (resp.stream) {
      if (!send_all(s, fd, response_head(resp, false))) return;
      SocketSink sink(s, fd);
      try {
        resp.stream(sink);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "raylight serve: event stream to %s ended: %s\n", peer.c_str(), e.what());
      }
      return;
    }
    send_response(s, fd, resp, keep, head_only);
    if (!keep) return;
  }
}

// Closing a socket with unread input makes the kernel send a reset, which can destroy the
// response still on its way (a 413 for a body the client is still sending). So: stop
// sending, then read and drop what the client still sends, briefly and boundedly.
void lingering_close(State& s, int fd) {
  ::shutdown(fd, SHUT_WR);
  const auto deadline = after(1.0);
  size_t drained = 0;
  char buf[64 * 1024];
  while (!s.force && drained < (16u << 20)) {
    if (wait_fd(s, fd, POLLIN, deadline, true) != Wait::Ready) break;
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n <= 0) break;
    drained += static_cast<size_t>(n);
  }
}

std::string peer_name(const sockaddr_storage& a) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (a.ss_family == AF_INET) {
    auto* v4 = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    port = ntohs(v4->sin_port);
  } else if (a.ss_family == AF_INET6) {
    auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    port = ntohs(v6->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

void accept_loop(std::shared_ptr<State> sp) {
  State& s = *sp;
  for (;;) {
    pollfd p[2] = {{s.listen_fd, POLLIN, 0}, {s.wake[0], POLLIN, 0}};
    int n = ::poll(p, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (s.stopping || n < 0) return;
    if (!(p[0].revents & POLLIN)) continue;
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    int fd = ::accept4(s.listen_fd, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(s.mu);
      const int max = s.options.max_connections;
      if (static_cast<int>(s.conns.size()) >= max) {
        // Full: displace the oldest connection that has had no head accepted (threads of
        // displaced connections end at once; at most `max` of them may still be ending).
        auto victim = s.conns.end();
        for (auto it = s.conns.begin(); it != s.conns.end(); ++it)
          if (!it->second.admitted && !it->second.evicted &&
              (victim == s.conns.end() || it->second.since < victim->second.since))
            victim = it;
        if (victim == s.conns.end() || static_cast<int>(s.conns.size()) >= 2 * max) {
          HttpResponse busy = error_response(503, "too many connections; try again later");
          std::string out = response_head(busy, false) + busy.body;
          (void)::send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
          ::close(fd);
          continue;
        }
        victim->second.evicted = true;
        ::shutdown(victim->first, SHUT_RDWR);
      }
      s.conns[fd].since = Clock::now();
    }
    std::string peer = peer_name(addr);
    std::thread([sp, fd, peer] {
      serve_connection(*sp, fd, peer);
      lingering_close(*sp, fd);
      std::lock_guard<std::mutex> lock(sp->mu);
      sp->conns.erase(fd);
      ::close(fd);
      sp->idle.notify_all();
    }).detach();
  }
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, Handler handler, HeadCheck head_check)
    : state_(std::make_shared<State>()) {
  state_->options = std::move(options);
  state_->options.max_body_total_bytes =
      std::max(state_->options.max_body_total_bytes, state_->options.limits.max_body_bytes);
  state_->handler = std::move(handler);
  state_->head_check = std::move(head_check);
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() {
  State& s = *state_;
  const std::string where = s.options.host + ":" + std::to_string(s.options.port);
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(s.options.port);
  if (int rc = getaddrinfo(s.options.host.c_str(), port.c_str(), &hints, &res); rc != 0)
    fail("cannot listen on ", where, ": ", gai_strerror(rc));
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(res);
    fail("cannot listen on ", where, ": socket: ", std::strerror(errno));
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 128) != 0) {
    int e = errno;
    freeaddrinfo(res);
    ::close(fd);
    fail("cannot listen on ", where, ": ", std::strerror(e));
  }
  freeaddrinfo(res);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  s.port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                       : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  if (::pipe2(s.wake, O_CLOEXEC) != 0) {
    ::close(fd);
    fail("cannot create the server's wake-up pipe: ", std::strerror(errno));
  }
  s.listen_fd = fd;
  s.acceptor = std::thread(accept_loop, state_);
}

int HttpServer::port() const { return state_->port; }
bool HttpServer::stopping() const { return state_->stopping; }

void HttpServer::stop(double grace_s) {
  State& s = *state_;
  if (!s.acceptor.joinable() || s.stopping.exchange(true)) return;
  char b = 1;
  (void)!::write(s.wake[1], &b, 1);  // never drained: wakes every poll from now on
  s.acceptor.join();
  ::close(s.listen_fd);
  s.listen_fd = -1;
  std::unique_lock<std::mutex> lock(s.mu);
  s.idle.notify_all();  // bodies waiting for their budget give up
  s.idle.wait_for(lock, std::chrono::milliseconds(static_cast<long long>(grace_s * 1000)),
                  [&] { return s.conns.empty(); });
  s.force = true;
  for (const auto& [fd, conn] : s.conns) ::shutdown(fd, SHUT_RDWR);
  s.idle.wait_for(lock, std::chrono::seconds(10), [&] { return s.conns.empty(); });
}

}  // namespace raylight::server
