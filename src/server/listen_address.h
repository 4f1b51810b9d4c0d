// The --listen argument of `raylight serve` and the loopback rule: the server binds to
// 127.0.0.1 unless told otherwise, and any address a remote machine could reach requires
// a token (docs/server.md).
#pragma once

#include <string>

namespace raylight::server {

struct ListenAddress {
  std::string host = "127.0.0.1";  // numeric IPv4 or IPv6
  int port = 8690;
};

// "127.0.0.1:8690", "localhost:8690", "[::1]:8690", "0.0.0.0:8690", ":8690" (loopback) or
// "8690"; port 0 lets the system choose. An Error says what is wrong.
ListenAddress parse_listen(const std::string& text);

// 127.0.0.0/8 and ::1.
bool is_loopback(const std::string& host);

}  // namespace raylight::server
