#include "options.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace raylight::cli {

Options::Options(const std::vector<std::string>& args, std::set<std::string> valued,
                 std::set<std::string> flags) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0) {
      positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    if (flags.count(name)) {
      if (inline_value) fail("option --", name, " takes no value");
      flags_set_.insert(name);
    } else if (valued.count(name)) {
      if (!inline_value) {
        if (i + 1 >= args.size()) fail("option --", name, " needs a value");
        value = args[++i];
      }
      values_[name] = value;
    } else {
      std::string known;
      for (const auto& v : valued) known += " --" + v;
      for (const auto& f : flags) known += " --" + f;
      fail("unknown option ", a, "; options here are:", known);
    }
  }
}

bool Options::has(const std::string& name) const { return values_.count(name) != 0; }

std::string Options::str(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

int64_t Options::integer(const std::string& name, int64_t fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end != '\0' || errno == ERANGE)
    fail("option --", name, " expects an integer, got '", it->second, "'");
  return v;
}

double Options::number(const std::string& name, double fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  char* end = nullptr;
  double v = std::strtod(it->second.c_str(), &end);
  if (it->second.empty() || *end != '\0' || !std::isfinite(v))
    fail("option --", name, " expects a number, got '", it->second, "'");
  return v;
}

}  // namespace raylight::cli
