#include "models/clip/clip_text_normalizer.h"

#include <unicase.h>
#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>

#include <cstdlib>
#include <memory>
#include <vector>

#include "core/error.h"

namespace raylight {
namespace {

// BERT's "Chinese character" blocks: CJK ideographs (not Hangul, kana).
bool is_cjk(ucs4_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

bool is_whitespace(ucs4_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || uc_is_general_category(c, UC_CATEGORY_Zs);
}

bool is_control(ucs4_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  return uc_is_general_category(c, UC_CATEGORY_C);
}

// Python's str.split() separators left after cleaning: space, line and paragraph separator.
bool splits(ucs4_t c) { return c == ' ' || c == 0x2028 || c == 0x2029; }

void append(std::string& out, ucs4_t c) {
  uint8_t buf[6];
  const int n = u8_uctomb(buf, c, sizeof buf);
  if (n > 0) out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

struct Freer {
  void operator()(uint8_t* p) const { std::free(p); }
};

// A libunistring transform (NFC, lower-casing) of `s`.
template <typename F>
std::string transformed(const std::string& s, F&& f, const char* what) {
  if (s.empty()) return s;
  size_t n = 0;
  std::unique_ptr<uint8_t, Freer> out(f(reinterpret_cast<const uint8_t*>(s.data()), s.size(), &n));
  if (!out) fail("prompt: Unicode ", what, " failed");
  return std::string(reinterpret_cast<const char*>(out.get()), n);
}

}  // namespace

std::string clip_clean_text(const std::string& text) {
  if (text.size() > kClipMaxPromptBytes)
    fail("prompt is ", text.size(), " bytes; the CLIP tokenizer takes at most ", kClipMaxPromptBytes);
  const auto* bytes = reinterpret_cast<const uint8_t*>(text.data());
  if (const uint8_t* bad = u8_check(bytes, text.size()))
    fail("prompt is not valid UTF-8 (at byte ", bad - bytes, ")");

  std::string cleaned;
  cleaned.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    ucs4_t c = 0;
    const int n = u8_mbtouc(&c, bytes + i, text.size() - i);
    i += static_cast<size_t>(n > 0 ? n : 1);
    if (c == 0 || c == 0xFFFD || is_control(c)) continue;
    if (is_whitespace(c)) {
      cleaned += ' ';
    } else if (is_cjk(c)) {
      cleaned += ' ';
      append(cleaned, c);
      cleaned += ' ';
    } else {
      append(cleaned, c);
    }
  }
  const std::string nfc = transformed(
      cleaned, [](const uint8_t* s, size_t n, size_t* len) { return u8_normalize(UNINORM_NFC, s, n, nullptr, len); },
      "normalisation");

  // Split into words, lower-case each (as Python's str.lower() on the word), join by spaces.
  std::string out;
  const auto* p = reinterpret_cast<const uint8_t*>(nfc.data());
  size_t start = 0;
  auto word = [&](size_t end) {
    if (end <= start) return;
    const std::string w = transformed(
        nfc.substr(start, end - start),
        [](const uint8_t* s, size_t n, size_t* len) { return u8_tolower(s, n, nullptr, nullptr, nullptr, len); },
        "lower-casing");
    if (!out.empty()) out += ' ';
    out += w;
  };
  for (size_t i = 0; i < nfc.size();) {
    ucs4_t c = 0;
    const int n = u8_mbtouc(&c, p + i, nfc.size() - i);
    const size_t step = static_cast<size_t>(n > 0 ? n : 1);
    if (splits(c)) {
      word(i);
      start = i + step;
    }
    i += step;
  }
  word(nfc.size());
  return out;
}

}  // namespace raylight
