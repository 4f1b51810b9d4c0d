// The T5/umT5 tokenizer against ids from the real Python SentencePiece (fixture written by
// tests/fixtures/make_umt5_golden.py with the tiny model): exact equality for ~20 strings
// (unicode, unknown characters, whitespace, literal special-token text, truncation to 512),
// the same model loaded three ways (file, embedded bytes, `spiece_model` tensor), and errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/t5/t5_tokenizer.h"
#include "models/t5/umt5_tiny.h"

using namespace raylight;

namespace {

std::string fixture(const std::string& name) {
  return std::string(RAYLIGHT_FIXTURE_DIR) + "/" + name;
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

struct Case {
  std::string text;
  std::vector<int> ids;
};

std::vector<Case> cases() {
  nlohmann::json j = nlohmann::json::parse(read_bytes(fixture("umt5_tokenizer_cases.json")));
  std::vector<Case> out;
  for (const auto& c : j.at("cases")) out.push_back({c.at("text"), c.at("ids")});
  return out;
}

std::filesystem::path temp_dir() {
  auto dir =
      std::filesystem::temp_directory_path() / ("raylight_tok_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir;
}

// Runs f and returns the raylight::Error message it throws ("" when it throws none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(TokenizerT5, MatchesPythonSentencePieceOnEveryCase) {
  const T5Tokenizer tok = T5Tokenizer::from_file(fixture("umt5_tiny_spiece.model"));
  EXPECT_EQ(tok.vocab_size(), 500);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.pad_id(), 0);
  const std::vector<Case> all = cases();
  ASSERT_GE(all.size(), 20u);
  for (const Case& c : all) EXPECT_EQ(tok.encode(c.text), c.ids) << "text: " << c.text;
}

TEST(TokenizerT5, AppendsEosAndTruncatesTo512KeepingIt) {
  const T5Tokenizer tok = T5Tokenizer::from_file(fixture("umt5_tiny_spiece.model"));
  EXPECT_EQ(tok.encode(""), std::vector<int>{1});
  bool saw_truncated = false;
  for (const Case& c : cases()) {
    ASSERT_FALSE(c.ids.empty());
    EXPECT_EQ(c.ids.back(), 1);
    EXPECT_LE(c.ids.size(), 512u);
    saw_truncated |= c.ids.size() == 512;
  }
  EXPECT_TRUE(saw_truncated) << "the fixture should hold a string longer than 512 tokens";
  const std::vector<int> full = tok.encode("a cat walking on the beach at sunset");
  const std::vector<int> cut = tok.encode("a cat walking on the beach at sunset", 4);
  ASSERT_EQ(cut.size(), 4u);
  EXPECT_EQ(std::vector<int>(cut.begin(), cut.begin() + 3),
            std::vector<int>(full.begin(), full.begin() + 3));
  EXPECT_EQ(cut.back(), 1);
  EXPECT_EQ(tok.encode("anything", 1), std::vector<int>{1});
  EXPECT_EQ(tok.decode(full), "a cat walking on the beach at sunset");
}

TEST(TokenizerT5, EmbeddedTinyModelIsTheFixtureModel) {
  EXPECT_EQ(std::string(umt5_tiny_spiece_model()), read_bytes(fixture("umt5_tiny_spiece.model")));
  const T5Tokenizer tok = umt5_tiny_tokenizer();
  for (const Case& c : cases()) EXPECT_EQ(tok.encode(c.text), c.ids) << "text: " << c.text;
}

TEST(TokenizerT5, SpieceModelTensorInSafetensorsEqualsModelFile) {
  const std::string path = fixture("umt5_tiny_scaled_fp8.safetensors");
  const T5Tokenizer from_file = T5Tokenizer::from_file(fixture("umt5_tiny_spiece.model"));
  const T5Tokenizer from_tensor = T5Tokenizer::from_safetensors(path);
  EXPECT_EQ(from_tensor.source(), path + ": spiece_model");
  Tensor bytes = SafetensorsFile::open(path)->tensor("spiece_model");
  EXPECT_EQ(std::string(static_cast<const char*>(bytes.raw()), bytes.nbytes()),
            read_bytes(fixture("umt5_tiny_spiece.model")));
  EXPECT_EQ(from_tensor.vocab_size(), from_file.vocab_size());
  for (const Case& c : cases()) EXPECT_EQ(from_tensor.encode(c.text), from_file.encode(c.text));
}

TEST(TokenizerT5, MissingOrCorruptModelsGiveErrorsNamingTheSource) {
  const auto dir = temp_dir();
  const std::string missing = (dir / "nope.model").string();
  std::string e = error_of([&] { T5Tokenizer::from_file(missing); });
  EXPECT_NE(e.find(missing), std::string::npos) << e;
  EXPECT_NE(e.find("no such file"), std::string::npos) << e;

  const std::string corrupt = (dir / "corrupt.model").string();
  std::ofstream(corrupt, std::ios::binary) << "this is not a protobuf \x01\x02\xff\xfe";
  e = error_of([&] { T5Tokenizer::from_file(corrupt); });
  EXPECT_NE(e.find(corrupt), std::string::npos) << e;
  EXPECT_NE(e.find("not a valid SentencePiece model"), std::string::npos) << e;

  // A truncated copy of the real model.
  const std::string good = read_bytes(fixture("umt5_tiny_spiece.model"));
  e = error_of(
      [&] { T5Tokenizer::from_bytes(std::string_view(good).substr(0, good.size() / 2), "half"); });
  EXPECT_NE(e.find("tokenizer half"), std::string::npos) << e;
  e = error_of([&] { T5Tokenizer::from_bytes("", "empty"); });
  EXPECT_NE(e.find("tokenizer empty"), std::string::npos) << e;

  // A safetensors file without the tensor, and one whose tensor has the wrong type.
  const std::string no_tok = fixture("umt5_tiny.safetensors");
  e = error_of([&] { T5Tokenizer::from_safetensors(no_tok); });
  EXPECT_NE(e.find(no_tok), std::string::npos) << e;
  EXPECT_NE(e.find("spiece_model"), std::string::npos) << e;
  const std::string wrong = (dir / "wrong_dtype.safetensors").string();
  write_safetensors(wrong, {{"spiece_model", Tensor::zeros({8})}});
  e = error_of([&] { T5Tokenizer::from_safetensors(wrong); });
  EXPECT_NE(e.find(wrong + ": spiece_model"), std::string::npos) << e;
  EXPECT_NE(e.find("U8"), std::string::npos) << e;
  const std::string garbage = (dir / "garbage_bytes.safetensors").string();
  Tensor junk = Tensor::zeros({16}, DType::U8);
  for (int i = 0; i < 16; ++i) junk.data<uint8_t>()[i] = static_cast<uint8_t>(0xf0 + i);
  write_safetensors(garbage, {{"spiece_model", junk}});
  e = error_of([&] { T5Tokenizer::from_safetensors(garbage); });
  EXPECT_NE(e.find(garbage + ": spiece_model"), std::string::npos) << e;
  std::filesystem::remove_all(dir);
}
