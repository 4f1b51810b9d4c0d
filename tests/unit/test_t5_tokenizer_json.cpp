// The T5 tokenizer built from an HF tokenizer.json (ComfyUI's t5_tokenizer has no
// spiece.model): tests/fixtures/make_t5_tokenizer_json.py writes the tiny SentencePiece
// model as tokenizer.json and records the ids of the original .model (HF's slow
// T5Tokenizer) and of HF `tokenizers` on the JSON (T5TokenizerFast) for ~25 strings.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "models/t5/t5_tokenizer.h"
#include "models/t5/t5_tokenizer_json.h"

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

}  // namespace

TEST(T5TokenizerJson, IdsEqualTheOriginalSentencePieceModel) {
  const T5Tokenizer tok = T5Tokenizer::from_file(fixture("t5_tiny_tokenizer.json"));
  const T5Tokenizer original = T5Tokenizer::from_file(fixture("umt5_tiny_spiece.model"));
  EXPECT_EQ(tok.vocab_size(), 500);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.pad_id(), 0);
  const auto doc = nlohmann::json::parse(read(fixture("t5_tokenizer_json_cases.json")));
  int same_as_fast = 0;
  for (const auto& c : doc.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    const std::vector<int> ids = tok.encode(text);
    EXPECT_EQ(ids, c.at("ids").get<std::vector<int>>()) << "text: " << text;
    EXPECT_EQ(ids, original.encode(text)) << "text: " << text;
    same_as_fast += ids == c.at("fast_ids").get<std::vector<int>>();
  }
  // Where HF tokenizers differs from the slow tokenizer (tabs, special-token texts with the
  // tiny charsmap) we follow the slow one; everywhere else all three agree.
  EXPECT_GE(same_as_fast, 20);
}

TEST(T5TokenizerJson, FoundInAFolderOrAComfyUiTree) {
  const std::string root = ::testing::TempDir() + "/t5json_comfy";
  const std::string dir = root + "/comfy/text_encoders/t5_tokenizer";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(fixture("t5_tiny_tokenizer.json"), dir + "/tokenizer.json",
                             std::filesystem::copy_options::overwrite_existing);
  const std::vector<int> want = T5Tokenizer::from_file(fixture("umt5_tiny_spiece.model")).encode("a red fox");
  EXPECT_EQ(T5Tokenizer::from_file(root).encode("a red fox"), want);
  EXPECT_EQ(T5Tokenizer::from_file(dir).encode("a red fox"), want);
  EXPECT_NE(error_of([&] { T5Tokenizer::from_file(root + "/comfy"); }).find("no spiece.model"), std::string::npos);
}

TEST(T5TokenizerJson, HostileFilesGiveClearErrors) {
  auto doc = nlohmann::json::parse(read(fixture("t5_tiny_tokenizer.json")));
  auto err = [](const nlohmann::json& d) { return error_of([&] { T5Tokenizer::from_tokenizer_json(d.dump(), "t"); }); };
  EXPECT_NE(error_of([] { T5Tokenizer::from_tokenizer_json("{\"model\": ", "t"); }).find("not valid JSON"),
            std::string::npos);
  EXPECT_NE(err(nlohmann::json::array()).find("no \"model\""), std::string::npos);
  auto d = doc;
  d["model"]["type"] = "BPE";
  EXPECT_NE(err(d).find("only Unigram"), std::string::npos);
  d = doc;
  d["model"]["unk_id"] = 9999;
  EXPECT_NE(err(d).find("unk_id 9999"), std::string::npos);
  d = doc;
  d["model"]["vocab"][7] = nlohmann::json::array({"x"});
  EXPECT_NE(err(d).find("vocab entry 7"), std::string::npos);
  d = doc;
  d["model"]["vocab"][8][0] = "";
  EXPECT_NE(err(d).find("empty piece"), std::string::npos);
  d = doc;
  d["model"]["vocab"][1][0] = "<eos>";
  EXPECT_NE(err(d).find("no </s> piece"), std::string::npos);
  d = doc;
  d["normalizer"]["precompiled_charsmap"] = "!!!";
  EXPECT_NE(err(d).find("not base64"), std::string::npos);
  d = doc;
  d["normalizer"] = {{"type", "Lowercase"}};
  EXPECT_NE(err(d).find("'Lowercase'"), std::string::npos);
  d = doc;
  d["model"]["vocab"][9][0] = d["model"]["vocab"][10][0];  // a duplicate piece: SentencePiece refuses it
  EXPECT_NE(err(d).find("not a valid SentencePiece model"), std::string::npos);
  d = doc;
  d["normalizer"]["precompiled_charsmap"] = "AAAA";  // a charsmap too short to hold its trie
  EXPECT_NE(err(d), "");
}
