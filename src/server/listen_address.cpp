// --listen parsing with inet_pton, so only numeric addresses pass (a name would need a
// resolver and could mean several addresses).
#include "server/listen_address.h"

#include <arpa/inet.h>

#include <cstdlib>

#include "core/error.h"

namespace raylight::server {

ListenAddress parse_listen(const std::string& text) {
  ListenAddress a;
  std::string host, port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      fail("--listen '", text, "': write IPv6 addresses as [address]:port");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else if (const size_t colon = text.rfind(':'); colon != std::string::npos) {
    if (text.find(':') != colon) fail("--listen '", text, "': write IPv6 addresses as [address]:port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  } else {
    port = text;
  }
  if (host == "localhost" || host.empty()) host = "127.0.0.1";
  char* end = nullptr;
  const long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end || p < 0 || p > 65535)
    fail("--listen '", text, "': the port must be a number from 0 to 65535");
  unsigned char buf[16];
  if (inet_pton(AF_INET, host.c_str(), buf) != 1 && inet_pton(AF_INET6, host.c_str(), buf) != 1)
    fail("--listen '", text, "': '", host, "' is not a numeric IPv4 or IPv6 address (or localhost)");
  a.host = host;
  a.port = static_cast<int>(p);
  return a;
}

bool is_loopback(const std::string& host) {
  unsigned char v4[4];
  if (inet_pton(AF_INET, host.c_str(), v4) == 1) return v4[0] == 127;
  unsigned char v6[16];
  if (inet_pton(AF_INET6, host.c_str(), v6) == 1) {
    for (int i = 0; i < 15; ++i)
      if (v6[i]) return false;
    return v6[15] == 1;
  }
  return false;
}

}  // namespace raylight::server
