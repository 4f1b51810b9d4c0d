// CLIP's byte-level BPE tokenizer, ids equal to HF's slow CLIPTokenizer without ftfy (see
// clip_text_normalizer.h for the clean-up; ComfyUI's SDTokenizer uses the same vocabulary and
// merges). A prompt becomes: clean-up, the pre-tokenizer regex over PCRE2
//   <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// (case-insensitive, Unicode classes), each piece's UTF-8 bytes mapped to printable
// characters (GPT-2's byte-to-unicode table), "</w>" on its last character, merges applied
// by rank (all occurrences of the best pair, left to right, per round), and the result looked
// up in the vocabulary (unknown pieces get <|endoftext|>'s id, as HF's unk token).
//
// Files: vocab.json (piece -> id) and merges.txt (a version line, then "a b" per line; HF
// reads at most 48894 merges), as in ComfyUI's comfy/sd1_tokenizer/ and HF's repos.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace raylight {

class ClipRegex;

class ClipTokenizer {
 public:
  static constexpr int kContextLength = 77;
  static constexpr size_t kMaxFileBytes = size_t{64} << 20;
  static constexpr size_t kMaxMerges = 49152 - 256 - 2;  // what HF's CLIPTokenizer reads

  // vocab.json text and merges.txt text; `source` names them in errors.
  static ClipTokenizer from_text(std::string_view vocab_json, std::string_view merges_txt,
                                 const std::string& source);
  // A folder holding vocab.json and merges.txt, a ComfyUI folder (its
  // comfy/sd1_tokenizer/), or a vocab.json file with merges.txt beside it.
  static ClipTokenizer from_path(const std::string& path);
  // Where from_path finds the files for `path`, or "" when it does not.
  static std::string find_folder(const std::string& path);

  ClipTokenizer(ClipTokenizer&&) noexcept;
  ClipTokenizer& operator=(ClipTokenizer&&) noexcept;
  ~ClipTokenizer();

  // BPE ids of `text` without start/end tokens.
  std::vector<int> tokenize(const std::string& text) const;
  // <|startoftext|>, up to length - 2 ids, <|endoftext|>, padded with <|endoftext|> to
  // `length` (HF padding="max_length" with CLIP-L's pad token, ComfyUI's pad_with_end).
  // `uncut` receives how many ids there would be without the cut (start and end included).
  std::vector<int> encode(const std::string& text, int length = kContextLength, size_t* uncut = nullptr) const;

  int bos_id() const { return bos_; }
  int eos_id() const { return eos_; }
  // One more than the largest id.
  int vocab_size() const { return vocab_size_; }
  const std::string& source() const { return source_; }

 private:
  ClipTokenizer() = default;
  std::vector<std::string> bpe(const std::string& piece) const;

  std::unordered_map<std::string, int> vocab_;
  std::unordered_map<std::string, int> ranks_;  // "a b" -> rank
  std::unique_ptr<ClipRegex> regex_;
  int bos_ = 0, eos_ = 0, vocab_size_ = 0;
  std::string source_;
};

}  // namespace raylight
