// Command-line options of one subcommand: `--name value` pairs and bare `--flag`s.
// Every option must be declared; unknown options, missing values and malformed numbers
// are errors that name the option.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace raylight::cli {

class Options {
 public:
  // `valued`: options that take a value; `flags`: options that don't.
  Options(const std::vector<std::string>& args, std::set<std::string> valued,
          std::set<std::string> flags = {});
  bool has(const std::string& name) const;
  std::string str(const std::string& name, const std::string& fallback) const;
  int64_t integer(const std::string& name, int64_t fallback) const;
  double number(const std::string& name, double fallback) const;
  bool flag(const std::string& name) const { return flags_set_.count(name) != 0; }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::set<std::string> flags_set_;
  std::vector<std::string> positional_;
};

}  // namespace raylight::cli
