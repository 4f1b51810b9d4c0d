// The text clean-up HF's slow CLIPTokenizer does before its pre-tokenizer regex when ftfy is
// not installed (its BasicTokenizer with lower-casing, no accent stripping, no punctuation
// split): control characters and U+0000/U+FFFD dropped, other whitespace made a space,
// spaces put around CJK ideographs, NFC, then each whitespace-separated word lower-cased
// (Unicode full case mapping, libunistring) and the words joined by single spaces.
// ftfy's mojibake repair is not done (HF does it only when ftfy is installed, ComfyUI never).
#pragma once

#include <string>

namespace raylight {

// Largest prompt accepted, in bytes (CLIP keeps 75 tokens; this only bounds the work).
constexpr size_t kClipMaxPromptBytes = size_t{1} << 20;

// Errors when `text` is not valid UTF-8 (naming the byte offset) or longer than the limit.
std::string clip_clean_text(const std::string& text);

}  // namespace raylight
