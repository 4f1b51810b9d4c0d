// GoogleTest names for suite cases: letters, digits and underscores, unique by index.
#pragma once

#include <cctype>
#include <string>

namespace raylight::suite {

inline std::string test_name(size_t index, const std::string& case_name) {
  std::string s = std::to_string(index) + "_";
  for (char ch : case_name) {
    const bool keep = std::isalnum(static_cast<unsigned char>(ch));
    if (keep) s += ch;
    else if (s.back() != '_') s += '_';
  }
  while (s.back() == '_') s.pop_back();
  return s;
}

}  // namespace raylight::suite
