#define PCRE2_CODE_UNIT_WIDTH 8
#include "models/clip/clip_regex.h"

#include <pcre2.h>

#include <memory>

#include "core/error.h"

namespace raylight {
namespace {

constexpr const char* kPattern =
    R"(<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+)";

struct MatchData {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};

}  // namespace

ClipRegex::ClipRegex() {
  int error = 0;
  PCRE2_SIZE offset = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern), PCRE2_ZERO_TERMINATED,
                        PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS, &error, &offset, nullptr);
  if (!code_) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    fail("CLIP tokenizer: PCRE2 cannot compile the pre-tokenizer pattern: ", reinterpret_cast<char*>(message));
  }
}

ClipRegex::~ClipRegex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

std::vector<std::string> ClipRegex::find_all(const std::string& text) const {
  auto* code = static_cast<pcre2_code*>(code_);
  std::unique_ptr<pcre2_match_data, MatchData> match(pcre2_match_data_create_from_pattern(code, nullptr));
  if (!match) fail("CLIP tokenizer: out of memory for a PCRE2 match");
  std::vector<std::string> out;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  PCRE2_SIZE at = 0;
  while (at < text.size()) {
    const int rc = pcre2_match(code, subject, text.size(), at, 0, match.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof message);
      fail("CLIP tokenizer: PCRE2 match failed: ", reinterpret_cast<char*>(message));
    }
    const PCRE2_SIZE* v = pcre2_get_ovector_pointer(match.get());
    if (v[1] <= v[0]) fail("CLIP tokenizer: the pre-tokenizer pattern matched an empty piece");
    out.emplace_back(text, v[0], v[1] - v[0]);
    at = v[1];
  }
  return out;
}

}  // namespace raylight
