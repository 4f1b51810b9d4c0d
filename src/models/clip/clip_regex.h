// The pre-tokenizer regex of CLIP's tokenizer over PCRE2 (std::regex has no \p{L} classes):
// compiled once, matched with a per-call match block, so one tokenizer serves any thread.
#pragma once

#include <string>
#include <vector>

namespace raylight {

class ClipRegex {
 public:
  ClipRegex();
  ~ClipRegex();
  ClipRegex(const ClipRegex&) = delete;
  ClipRegex& operator=(const ClipRegex&) = delete;
  // Every non-overlapping match of the pattern in `text` (valid UTF-8), left to right, as
  // Python's re.findall.
  std::vector<std::string> find_all(const std::string& text) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8
};

}  // namespace raylight
