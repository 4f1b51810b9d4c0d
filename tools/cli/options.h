// Command-line options of one subcommand: `--name value` pairs and bare `--flag`s.
// Every option must be declared; unknown options, missing values, malformed or out-of-range
// numbers, stray words and values that look like options are errors that name the option.
// A user who typed `generate a fox in the snow` or `sample --out --steps 2` made a mistake
// we must not guess around: the first would silently use the default prompt, the second
// would write a file named `--steps`. A value that really starts with "--" can be given as
// `--name=--value`.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace raylight::cli {

class Options {
 public:
  // `valued`: options that take a value; `flags`: options that don't; `max_positional`:
  // how many bare words (not options) the command takes (`inspect FILE`: 1; most: none).
  Options(const std::vector<std::string>& args, std::set<std::string> valued,
          std::set<std::string> flags = {}, size_t max_positional = 0);
  bool has(const std::string& name) const;
  std::string str(const std::string& name, const std::string& fallback) const;
  int64_t integer(const std::string& name, int64_t fallback) const;
  // An integer that must lie in [lo, hi]; the error names the option and the range.
  int64_t integer_in(const std::string& name, int64_t fallback, int64_t lo, int64_t hi) const;
  double number(const std::string& name, double fallback) const;
  bool flag(const std::string& name) const { return flags_set_.count(name) != 0; }
  const std::vector<std::string>& positional() const { return positional_; }
  // Every value given for a repeatable option (--lora A --lora B), in order.
  std::vector<std::string> all(const std::string& name) const;

 private:
  std::map<std::string, std::string> values_;
  std::set<std::string> flags_set_;
  std::vector<std::string> positional_;
  std::map<std::string, std::vector<std::string>> all_;
};

}  // namespace raylight::cli
