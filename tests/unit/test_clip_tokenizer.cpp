// The CLIP BPE tokenizer against HF's slow CLIPTokenizer (transformers 4.x, no ftfy) on the
// strings of tests/fixtures/make_clip_golden.py with its tiny trained vocabulary and merges:
// non-ASCII (accents, NFC, Greek final sigma, CJK spacing, emoji, Turkish dotted I),
// punctuation, contractions in either case, control characters, the special-token texts,
// and prompts past 77 tokens (cut with the end token kept). Then hostile files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "models/clip/clip_text_normalizer.h"
#include "models/clip/clip_tokenizer.h"

using namespace raylight;

namespace {

std::string fixture(const std::string& name) { return std::string(RAYLIGHT_FIXTURE_DIR) + "/" + name; }

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

ClipTokenizer tiny() { return ClipTokenizer::from_path(fixture("clip_tiny_tokenizer")); }

}  // namespace

TEST(ClipTokenizer, IdsEqualHfSlowTokenizerOnCommittedStrings) {
  const ClipTokenizer tok = tiny();
  const auto cases = nlohmann::json::parse(read(fixture("clip_tokenizer_cases.json")));
  ASSERT_GE(cases.size(), 20u);
  for (const auto& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    const std::vector<int> expected = c.at("ids").get<std::vector<int>>();
    EXPECT_EQ(tok.encode(text), expected) << "text: " << text;
  }
}

TEST(ClipTokenizer, LongPromptsAreCutTo77WithTheEndTokenKept) {
  const ClipTokenizer tok = tiny();
  std::string text;
  for (int i = 0; i < 40; ++i) text += "portrait of 42 ";
  size_t uncut = 0;
  const std::vector<int> ids = tok.encode(text, 77, &uncut);
  ASSERT_EQ(ids.size(), 77u);
  EXPECT_GT(uncut, 77u);
  EXPECT_EQ(ids.front(), tok.bos_id());
  EXPECT_EQ(ids.back(), tok.eos_id());
  EXPECT_NE(ids[75], tok.eos_id());
  // Short prompts are padded with the end token after their own end token.
  const std::vector<int> cat = tok.encode("cat", 77, &uncut);
  EXPECT_EQ(uncut, tok.tokenize("cat").size() + 2);
  for (size_t i = uncut - 1; i < cat.size(); ++i) EXPECT_EQ(cat[i], tok.eos_id());
}

TEST(ClipTokenizer, FindsTheFilesInAFolderAComfyUiTreeOrByVocabPath) {
  const std::string dir = fixture("clip_tiny_tokenizer");
  EXPECT_EQ(ClipTokenizer::find_folder(dir), dir);
  EXPECT_EQ(ClipTokenizer::find_folder(dir + "/vocab.json"), dir);
  EXPECT_EQ(ClipTokenizer::find_folder(fixture("")), "");
  const std::string root = ::testing::TempDir() + "/clip_comfy_root";
  std::filesystem::create_directories(root + "/comfy/sd1_tokenizer");
  std::filesystem::copy_file(dir + "/vocab.json", root + "/comfy/sd1_tokenizer/vocab.json",
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(dir + "/merges.txt", root + "/comfy/sd1_tokenizer/merges.txt",
                             std::filesystem::copy_options::overwrite_existing);
  EXPECT_EQ(ClipTokenizer::from_path(root).encode("a photo"), tiny().encode("a photo"));
  EXPECT_NE(error_of([&] { ClipTokenizer::from_path(fixture("")); }).find("holds no vocab.json"), std::string::npos);
}

TEST(ClipTokenizer, HostileFilesGiveClearErrors) {
  const std::string vocab = read(fixture("clip_tiny_tokenizer/vocab.json"));
  const std::string merges = read(fixture("clip_tiny_tokenizer/merges.txt"));
  auto err = [&](const std::string& v, const std::string& m) {
    return error_of([&] { ClipTokenizer::from_text(v, m, "test"); });
  };
  EXPECT_NE(err("{\"a\": 1", merges).find("not valid JSON"), std::string::npos);
  EXPECT_NE(err("[1, 2]", merges).find("not a non-empty object"), std::string::npos);
  EXPECT_NE(err("{\"a\": \"x\"}", merges).find("not an integer id"), std::string::npos);
  EXPECT_NE(err("{\"a\": -3}", merges).find("outside"), std::string::npos);
  EXPECT_NE(err("{\"a\": 1}", merges).find("<|startoftext|>"), std::string::npos);
  EXPECT_NE(err(vocab, "").find("no merges"), std::string::npos);
  EXPECT_NE(err(vocab, "#version: 0.2\n").find("no merges"), std::string::npos);
  EXPECT_NE(err(vocab, "#version: 0.2\na b c\n").find("line 2"), std::string::npos);
  EXPECT_NE(err(vocab, "#version: 0.2\nab\n").find("line 2"), std::string::npos);
  EXPECT_NE(err(std::string(ClipTokenizer::kMaxFileBytes + 1, ' '), merges).find("larger than"), std::string::npos);
  // Prompts: invalid UTF-8 and oversized ones are refused, not mangled.
  const ClipTokenizer tok = tiny();
  EXPECT_NE(error_of([&] { tok.encode("bad \xff byte"); }).find("not valid UTF-8 (at byte 4)"), std::string::npos);
  EXPECT_NE(error_of([&] { tok.encode(std::string(kClipMaxPromptBytes + 1, 'a')); }).find("at most"),
            std::string::npos);
}

TEST(ClipTokenizer, AVeryLongWordTokenizesQuickly) {
  // 200 KB in one pre-token: quadratic merging would take minutes.
  const ClipTokenizer tok = tiny();
  std::string word;
  for (int i = 0; i < 20000; ++i) word += "photograph";
  const std::vector<int> ids = tok.tokenize(word);
  EXPECT_GT(ids.size(), 1000u);
  for (int id : ids) ASSERT_TRUE(id >= 0 && id < tok.vocab_size());
  // (The committed HF cases hold a 300-character word, for the merge order of long words.)
}

TEST(ClipTextNormalizer, CleansLikeHfBasicTokenizer) {
  EXPECT_EQ(clip_clean_text("  A\tB\n\nC  "), "a b c");
  EXPECT_EQ(clip_clean_text("e\xcc\x81"), "\xc3\xa9");           // NFC
  EXPECT_EQ(clip_clean_text("a\x07" "b"), "ab");                   // control dropped
  EXPECT_EQ(clip_clean_text("\xe7\x8c\xab\xe7\x8c\xab"), "\xe7\x8c\xab \xe7\x8c\xab");  // CJK spaced
  EXPECT_EQ(clip_clean_text("\xce\x9f\xce\x94\xce\x9f\xce\xa3"), "\xce\xbf\xce\xb4\xce\xbf\xcf\x82");  // final sigma
}
