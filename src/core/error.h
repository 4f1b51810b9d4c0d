// Errors the engine reports to users. Every failure that comes from input (a file,
// an option, a tensor shape) is a raylight::Error whose message names what is wrong;
// the command line prints it and exits non-zero. Bugs use assertions instead.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace raylight {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Builds a message from stream-able parts: fail("tensor ", name, " has ", n, " dims").
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw Error(os.str());
}

}  // namespace raylight
