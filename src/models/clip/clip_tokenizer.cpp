// Merges run as HF's loop does - each round takes the lowest-ranked pair present and merges
// all its occurrences left to right - but over a linked list and a heap, so a long word
// costs O(n log n) rather than O(n^2) (a prompt is hostile input).
#include "models/clip/clip_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>

#include "core/error.h"
#include "models/clip/clip_regex.h"
#include "models/clip/clip_text_normalizer.h"

namespace raylight {
namespace {

constexpr const char* kBos = "<|startoftext|>";
constexpr const char* kEos = "<|endoftext|>";

// GPT-2's byte -> printable character table, as UTF-8 strings.
const std::vector<std::string>& byte_chars() {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t(256);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const int cp = printable ? b : 256 + extra++;
      std::string s;
      if (cp < 0x80) {
        s += static_cast<char>(cp);
      } else {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      }
      t[b] = s;
    }
    return t;
  }();
  return table;
}

std::string read_limited(const std::filesystem::path& path, const char* what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail("CLIP tokenizer ", what, " ", path.string(), " is not a file");
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) fail("CLIP tokenizer ", what, " ", path.string(), ": cannot read its size");
  if (size > ClipTokenizer::kMaxFileBytes)
    fail("CLIP tokenizer ", what, " ", path.string(), " is ", size, " bytes; at most ", ClipTokenizer::kMaxFileBytes,
         " are read");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("CLIP tokenizer ", what, " ", path.string(), " cannot be opened");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool has_files(const std::filesystem::path& dir) {
  std::error_code ec;
  return std::filesystem::is_regular_file(dir / "vocab.json", ec) &&
         std::filesystem::is_regular_file(dir / "merges.txt", ec);
}

}  // namespace

ClipTokenizer::ClipTokenizer(ClipTokenizer&&) noexcept = default;
ClipTokenizer& ClipTokenizer::operator=(ClipTokenizer&&) noexcept = default;
ClipTokenizer::~ClipTokenizer() = default;

ClipTokenizer ClipTokenizer::from_text(std::string_view vocab_json, std::string_view merges_txt,
                                       const std::string& source) {
  if (vocab_json.size() > kMaxFileBytes || merges_txt.size() > kMaxFileBytes)
    fail("CLIP tokenizer ", source, ": vocab or merges larger than ", kMaxFileBytes, " bytes");
  ClipTokenizer t;
  t.source_ = source;
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(vocab_json);
  } catch (const nlohmann::json::exception& e) {
    fail("CLIP tokenizer ", source, ": vocab.json is not valid JSON (", e.what(), ")");
  }
  if (!vocab.is_object() || vocab.empty())
    fail("CLIP tokenizer ", source, ": vocab.json is not a non-empty object of piece -> id");
  int largest = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer())
      fail("CLIP tokenizer ", source, ": vocab.json entry '", it.key(), "' is not an integer id");
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= (int64_t{1} << 24))
      fail("CLIP tokenizer ", source, ": vocab.json entry '", it.key(), "' has id ", id, ", outside [0, 2^24)");
    t.vocab_[it.key()] = static_cast<int>(id);
    largest = std::max(largest, static_cast<int>(id));
  }
  t.vocab_size_ = largest + 1;
  for (const char* special : {kBos, kEos})
    if (!t.vocab_.count(special)) fail("CLIP tokenizer ", source, ": vocab.json has no ", special, " entry");
  t.bos_ = t.vocab_.at(kBos);
  t.eos_ = t.vocab_.at(kEos);

  // merges.txt: the first line is a version header (HF skips it whatever it holds).
  size_t line_start = merges_txt.find('\n');
  if (line_start == std::string_view::npos)
    fail("CLIP tokenizer ", source, ": merges.txt has no merges (only a header line or nothing)");
  ++line_start;
  size_t line_no = 1;
  while (line_start < merges_txt.size() && t.ranks_.size() < kMaxMerges) {
    size_t end = merges_txt.find('\n', line_start);
    if (end == std::string_view::npos) end = merges_txt.size();
    std::string_view line = merges_txt.substr(line_start, end - line_start);
    ++line_no;
    line_start = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    if (space == 0 || space == std::string_view::npos || space + 1 >= line.size() ||
        line.find(' ', space + 1) != std::string_view::npos)
      fail("CLIP tokenizer ", source, ": merges.txt line ", line_no, " is not two pieces separated by one space");
    // A repeated pair keeps its later rank, as HF's dict(zip(merges, range)).
    t.ranks_[std::string(line)] = static_cast<int>(line_no - 2);
  }
  if (t.ranks_.empty()) fail("CLIP tokenizer ", source, ": merges.txt has no merges");
  t.regex_ = std::make_unique<ClipRegex>();
  return t;
}

std::string ClipTokenizer::find_folder(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p(path);
  if (fs::is_directory(p, ec)) {
    if (has_files(p)) return p.string();
    if (has_files(p / "comfy" / "sd1_tokenizer")) return (p / "comfy" / "sd1_tokenizer").string();
    if (has_files(p / "sd1_tokenizer")) return (p / "sd1_tokenizer").string();
    return "";
  }
  if (fs::is_regular_file(p, ec) && p.filename() == "vocab.json" && has_files(p.parent_path()))
    return p.parent_path().string();
  return "";
}

ClipTokenizer ClipTokenizer::from_path(const std::string& path) {
  const std::string folder = find_folder(path);
  if (folder.empty())
    fail("CLIP tokenizer: ", path,
         " holds no vocab.json and merges.txt (give the folder holding them, ComfyUI's folder with "
         "comfy/sd1_tokenizer/, or the vocab.json file)");
  const std::filesystem::path dir(folder);
  return from_text(read_limited(dir / "vocab.json", "vocabulary"), read_limited(dir / "merges.txt", "merges"),
                   folder);
}

std::vector<std::string> ClipTokenizer::bpe(const std::string& piece) const {
  // Symbols: one per byte's printable character, "</w>" on the last.
  const std::vector<std::string>& chars = byte_chars();
  std::vector<std::string> sym;
  sym.reserve(piece.size());
  for (unsigned char b : piece) sym.push_back(chars[b]);
  if (sym.empty()) return sym;
  sym.back() += "</w>";
  const int n = static_cast<int>(sym.size());
  std::vector<int> next(n), prev(n);
  std::vector<bool> alive(n, true);
  for (int i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  struct Pair {
    int rank, left, right;
    bool operator>(const Pair& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Pair, std::vector<Pair>, std::greater<Pair>> heap;
  auto push = [&](int left) {
    if (left < 0 || next[left] < 0) return;
    auto it = ranks_.find(sym[left] + " " + sym[next[left]]);
    if (it != ranks_.end()) heap.push({it->second, left, next[left]});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  std::vector<Pair> round;
  std::vector<int> merged;
  while (!heap.empty()) {
    // One round: every entry of the lowest rank, applied left to right where still valid.
    const int rank = heap.top().rank;
    round.clear();
    while (!heap.empty() && heap.top().rank == rank) {
      round.push_back(heap.top());
      heap.pop();
    }
    std::string first, second;
    bool named = false;
    merged.clear();
    for (const Pair& p : round) {
      if (!alive[p.left] || !alive[p.right] || next[p.left] != p.right) continue;
      auto it = ranks_.find(sym[p.left] + " " + sym[p.right]);
      if (it == ranks_.end() || it->second != rank) continue;
      if (!named) {
        const size_t space = it->first.find(' ');
        first = it->first.substr(0, space);
        second = it->first.substr(space + 1);
        named = true;
      }
      if (sym[p.left] != first || sym[p.right] != second) continue;
      sym[p.left] += sym[p.right];
      alive[p.right] = false;
      next[p.left] = next[p.right];
      if (next[p.left] >= 0) prev[next[p.left]] = p.left;
      merged.push_back(p.left);
    }
    // The pairs the merged symbols now form wait for the next round.
    for (int m : merged) {
      if (!alive[m]) continue;
      push(prev[m]);
      push(m);
    }
  }
  std::vector<std::string> out;
  for (int i = 0; i >= 0; i = next[i]) out.push_back(std::move(sym[i]));
  return out;
}

std::vector<int> ClipTokenizer::tokenize(const std::string& text) const {
  std::vector<int> ids;
  for (const std::string& piece : regex_->find_all(clip_clean_text(text))) {
    if (piece == kBos || piece == kEos) {  // HF's bpe cache holds the two specials as they are
      ids.push_back(piece == kBos ? bos_ : eos_);
      continue;
    }
    for (const std::string& token : bpe(piece)) {
      auto it = vocab_.find(token);
      ids.push_back(it == vocab_.end() ? eos_ : it->second);
    }
  }
  return ids;
}

std::vector<int> ClipTokenizer::encode(const std::string& text, int length, size_t* uncut) const {
  if (length < 2) fail("CLIP tokenizer: a context of ", length, " tokens cannot hold start and end");
  const std::vector<int> body = tokenize(text);
  if (uncut) *uncut = body.size() + 2;
  std::vector<int> ids{bos_};
  const size_t keep = std::min(body.size(), static_cast<size_t>(length - 2));
  ids.insert(ids.end(), body.begin(), body.begin() + static_cast<std::ptrdiff_t>(keep));
  ids.push_back(eos_);
  ids.resize(static_cast<size_t>(length), eos_);
  return ids;
}

}  // namespace raylight
