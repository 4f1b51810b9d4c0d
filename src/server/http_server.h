// A small HTTP/1.1 server on POSIX sockets: one accept thread and one thread per
// connection (at most `max_connections`; more are answered 503 and closed). Threads fit
// this server: its clients are a few ComfyUI instances and scripts, its requests are few and
// large, and event streams block for minutes, which is simplest as a thread waiting on a
// condition. Every read is bounded in size (limits) and time (idle and request timeouts), so
// a slow or silent client costs one thread for at most those seconds.
//
// Work before trust is bounded: a request's head goes to the head check (the application's
// authentication and routing) before any body byte is read or `100 Continue` is sent; a
// connection that has not yet had a head accepted must deliver one within head_timeout_s,
// however slowly it drips; when every connection is taken, a new one displaces the oldest
// connection that has not had a head accepted (so clients stuck in their first head cannot
// lock out those that send whole, accepted requests); and the bodies being received at once,
// over all connections, stay under max_body_total_bytes.
//
// The handler runs on the connection's thread; it must not block forever (long waits watch
// for the server stopping). stop() closes the listening socket, lets requests in progress
// finish within a grace period, then shuts down the sockets still open. HEAD requests get
// the handler's head without its body.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "server/http_message.h"

namespace raylight::server {

struct HttpServerOptions {
  std::string host = "127.0.0.1";  // a numeric IPv4 or IPv6 address
  int port = 0;                     // 0: the system picks a free port
  HttpLimits limits;
  double idle_timeout_s = 30;       // silence allowed before a request, or inside one
  double request_timeout_s = 300;   // a whole request (head and body), once begun
  double head_timeout_s = 10;       // a whole head, on a connection with none accepted yet
  int max_connections = 64;
  size_t max_body_total_bytes = 1024u << 20;  // bodies being received, all connections together
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(HttpRequest&)>;
  // Sees each request's head (body empty) with its Content-Length, before the body is read:
  // a response to send instead (the connection then closes), or nullopt to go on.
  using HeadCheck = std::function<std::optional<HttpResponse>(const HttpRequest&, size_t content_length)>;
  HttpServer(HttpServerOptions options, Handler handler, HeadCheck head_check = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts accepting; an Error names the address when it cannot.
  void start();
  // The port actually bound (after start()).
  int port() const;
  // Stops accepting and ends every connection (see the file comment). Idempotent.
  void stop(double grace_s = 3.0);
  // Whether stop() has begun; long handlers poll it.
  bool stopping() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace raylight::server
