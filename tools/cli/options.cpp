// Parsing of `--name value` options; see options.h for what is refused and why.
#include "options.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace raylight::cli {

Options::Options(const std::vector<std::string>& args, std::set<std::string> valued,
                 std::set<std::string> flags, size_t max_positional) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0) {
      if (positional_.size() >= max_positional) {
        if (max_positional == 0)
          fail("unexpected word '", a, "': this command takes only --options (quote text with "
               "spaces as one value, e.g. --prompt \"a fox in the snow\")");
        fail("unexpected word '", a, "': this command takes ", max_positional,
             " argument(s) besides --options");
      }
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
        if (args[i + 1].rfind("--", 0) == 0)
          fail("option --", name, " needs a value, but the next word is the option ", args[i + 1],
               " (write --", name, "=", args[i + 1], " if that is really the value)");
        value = args[++i];
      }
      values_[name] = value;  // the last one wins, so wrappers can override a default
      all_[name].push_back(value);
    } else {
      std::string known;
      for (const auto& v : valued) known += " --" + v;
      for (const auto& f : flags) known += " --" + f;
      fail("unknown option ", a, "; options here are:", known);
    }
  }
}

bool Options::has(const std::string& name) const { return values_.count(name) != 0; }

std::vector<std::string> Options::all(const std::string& name) const {
  auto it = all_.find(name);
  return it == all_.end() ? std::vector<std::string>{} : it->second;
}

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

int64_t Options::integer_in(const std::string& name, int64_t fallback, int64_t lo,
                            int64_t hi) const {
  const int64_t v = integer(name, fallback);
  if (v < lo || v > hi)
    fail("option --", name, " must be between ", lo, " and ", hi, ", got ", str(name, ""));
  return v;
}

double Options::number(const std::string& name, double fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(it->second.c_str(), &end);
  if (it->second.empty() || *end != '\0' || !std::isfinite(v))
    fail("option --", name, " expects a number, got '", it->second, "'");
  return v;
}

}  // namespace raylight::cli
