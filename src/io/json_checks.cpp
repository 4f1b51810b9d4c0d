#include "io/json_checks.h"

#include <algorithm>
#include <climits>
#include <set>
#include <vector>

namespace raylight {

int json_nesting_depth(std::string_view s, int limit) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : s) {
    if (deepest > limit) break;
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

bool json_parse_unique_keys(std::string_view text, nlohmann::json* out, std::string* duplicate) {
  std::vector<std::set<std::string>> keys;  // one set per open object
  duplicate->clear();
  auto on_event = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) {
      keys.emplace_back();
    } else if (event == E::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (event == E::key && !keys.empty() && duplicate->empty() &&
               !keys.back().insert(parsed.get<std::string>()).second) {
      *duplicate = parsed.get<std::string>();
    }
    return true;
  };
  *out = nlohmann::json::parse(text.begin(), text.end(), on_event);
  return duplicate->empty();
}

bool json_as_count(const nlohmann::json& j, uint64_t* out) {
  if (j.is_number_unsigned()) {
    *out = j.get<uint64_t>();
  } else if (j.is_number_integer()) {
    const int64_t v = j.get<int64_t>();
    if (v < 0) return false;
    *out = static_cast<uint64_t>(v);
  } else {
    return false;
  }
  return *out <= static_cast<uint64_t>(INT64_MAX);
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace raylight
