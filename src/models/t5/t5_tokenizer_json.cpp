#include "models/t5/t5_tokenizer_json.h"

#include <cmath>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"

namespace raylight {
namespace {

using nlohmann::json;

// --- protobuf wire format -----------------------------------------------------------------
void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}
void key(std::string& out, int field, int wire) { varint(out, (static_cast<uint64_t>(field) << 3) | wire); }
void int_field(std::string& out, int field, int64_t v) {  // int32/enum/bool; negatives as 10 bytes
  key(out, field, 0);
  varint(out, static_cast<uint64_t>(v));
}
void bytes_field(std::string& out, int field, std::string_view v) {
  key(out, field, 2);
  varint(out, v.size());
  out.append(v);
}
void float_field(std::string& out, int field, float v) {
  key(out, field, 5);
  char b[4];
  std::memcpy(b, &v, 4);  // little-endian hosts only (x86-64, aarch64)
  out.append(b, 4);
}

enum PieceType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kByte = 6 };

std::string base64_decode(const std::string& in, const std::string& source) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  size_t i = 0;
  for (; i < in.size() && in[i] != '='; ++i) {
    const int v = value(in[i]);
    if (v < 0) fail("tokenizer ", source, ": precompiled_charsmap is not base64 (character ", i, ")");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  for (; i < in.size(); ++i)
    if (in[i] != '=') fail("tokenizer ", source, ": precompiled_charsmap has data after its padding");
  return out;
}

// The normalizers of a (possibly Sequence) normalizer, flattened.
void flatten(const json& n, std::vector<const json*>& out, const std::string& source) {
  if (n.is_null()) return;
  if (!n.is_object() || !n.contains("type") || !n["type"].is_string())
    fail("tokenizer ", source, ": a normalizer has no type");
  if (n["type"] == "Sequence") {
    if (!n.contains("normalizers") || !n["normalizers"].is_array())
      fail("tokenizer ", source, ": a Sequence normalizer has no list");
    for (const json& m : n["normalizers"]) flatten(m, out, source);
  } else {
    out.push_back(&n);
  }
}

bool is_byte_piece(const std::string& p) {
  return p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' && std::isxdigit(static_cast<unsigned char>(p[3])) &&
         std::isxdigit(static_cast<unsigned char>(p[4]));
}

}  // namespace

std::string spiece_model_from_tokenizer_json(std::string_view text, const std::string& source) {
  if (text.size() > kMaxTokenizerJsonBytes)
    fail("tokenizer ", source, " is ", text.size(), " bytes; at most ", kMaxTokenizerJsonBytes, " are read");
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    fail("tokenizer ", source, ": not valid JSON (", e.what(), ")");
  }
  if (!doc.is_object() || !doc.contains("model") || !doc["model"].is_object())
    fail("tokenizer ", source, ": no \"model\" object (not an HF tokenizer.json)");
  const json& model = doc["model"];
  const std::string type = model.value("type", std::string());
  if (type != "Unigram")
    fail("tokenizer ", source, ": the model is '", type, "'; only Unigram (T5's) tokenizer.json files are read");
  if (!model.contains("vocab") || !model["vocab"].is_array() || model["vocab"].empty())
    fail("tokenizer ", source, ": the Unigram model has no vocab");
  const json& vocab = model["vocab"];
  if (vocab.size() > (size_t{1} << 22)) fail("tokenizer ", source, ": ", vocab.size(), " pieces is too many");
  if (!model.contains("unk_id") || !model["unk_id"].is_number_integer())
    fail("tokenizer ", source, ": the Unigram model has no integer unk_id");
  const int64_t unk = model["unk_id"].get<int64_t>();
  if (unk < 0 || unk >= static_cast<int64_t>(vocab.size()))
    fail("tokenizer ", source, ": unk_id ", unk, " is outside the ", vocab.size(), " pieces");
  const bool byte_fallback = model.value("byte_fallback", false);

  // Special added tokens by id.
  std::map<int64_t, std::string> special;
  if (doc.contains("added_tokens") && doc["added_tokens"].is_array())
    for (const json& t : doc["added_tokens"])
      if (t.is_object() && t.value("special", false) && t.contains("id") && t["id"].is_number_integer() &&
          t.contains("content") && t["content"].is_string())
        special[t["id"].get<int64_t>()] = t["content"].get<std::string>();

  // Normalizer: the charsmap, and what else SentencePiece's normalizer does anyway.
  std::vector<const json*> norms;
  if (doc.contains("normalizer")) flatten(doc["normalizer"], norms, source);
  std::string charsmap;
  for (const json* n : norms) {
    const std::string t = (*n)["type"].get<std::string>();
    if (t == "Precompiled") {
      if (!n->contains("precompiled_charsmap") || !(*n)["precompiled_charsmap"].is_string())
        fail("tokenizer ", source, ": the Precompiled normalizer has no charsmap string");
      charsmap = base64_decode((*n)["precompiled_charsmap"].get<std::string>(), source);
    } else if (t != "Strip" && t != "Replace") {  // remove_extra_whitespaces covers these
      fail("tokenizer ", source, ": normalizer '", t, "' has no SentencePiece equivalent here");
    }
  }
  // Pre-tokenizer: Metaspace's "▁" and whether it is prepended.
  bool dummy_prefix = true;
  std::vector<const json*> pres;
  if (doc.contains("pre_tokenizer") && doc["pre_tokenizer"].is_object()) {
    const json& p = doc["pre_tokenizer"];
    if (p.value("type", std::string()) == "Sequence" && p.contains("pretokenizers") && p["pretokenizers"].is_array())
      for (const json& q : p["pretokenizers"]) pres.push_back(&q);
    else
      pres.push_back(&p);
  }
  for (const json* p : pres) {
    if (!p->is_object()) continue;
    const std::string t = p->value("type", std::string());
    if (t == "Metaspace") {
      if (p->value("replacement", std::string("\xe2\x96\x81")) != "\xe2\x96\x81")
        fail("tokenizer ", source, ": Metaspace replacement is not \"\xe2\x96\x81\"");
      if (p->contains("add_prefix_space") && (*p)["add_prefix_space"].is_boolean())
        dummy_prefix = (*p)["add_prefix_space"].get<bool>();
      if (p->contains("prepend_scheme") && (*p)["prepend_scheme"].is_string())
        dummy_prefix = (*p)["prepend_scheme"] != "never";
    } else if (t != "WhitespaceSplit") {
      fail("tokenizer ", source, ": pre-tokenizer '", t, "' has no SentencePiece equivalent here");
    }
  }

  std::string out;
  int64_t eos = -1, pad = -1;
  for (size_t i = 0; i < vocab.size(); ++i) {
    const json& e = vocab[i];
    if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number())
      fail("tokenizer ", source, ": vocab entry ", i, " is not [piece, score]");
    const std::string piece = e[0].get<std::string>();
    const double score = e[1].get<double>();
    if (piece.empty()) fail("tokenizer ", source, ": vocab entry ", i, " is an empty piece");
    if (!std::isfinite(score)) fail("tokenizer ", source, ": vocab entry ", i, " has a non-finite score");
    int kind = kNormal;
    const auto sp = special.find(static_cast<int64_t>(i));
    if (static_cast<int64_t>(i) == unk) {
      kind = kUnknown;
    } else if (sp != special.end()) {
      kind = piece == "</s>" || piece == "<pad>" || piece == "<s>" ? kControl : kUserDefined;
    } else if (byte_fallback && is_byte_piece(piece)) {
      kind = kByte;
    }
    if (piece == "</s>" && eos < 0) eos = static_cast<int64_t>(i);
    if (piece == "<pad>" && pad < 0) pad = static_cast<int64_t>(i);
    std::string msg;
    bytes_field(msg, 1, piece);
    float_field(msg, 2, static_cast<float>(score));
    int_field(msg, 3, kind);
    bytes_field(out, 1, msg);
  }
  if (eos < 0) fail("tokenizer ", source, ": the vocab has no </s> piece");

  std::string trainer;
  int_field(trainer, 3, 1);  // model_type UNIGRAM
  int_field(trainer, 4, static_cast<int64_t>(vocab.size()));
  int_field(trainer, 35, byte_fallback ? 1 : 0);
  int_field(trainer, 40, unk);
  int_field(trainer, 41, -1);  // bos: T5 has none
  int_field(trainer, 42, eos);
  int_field(trainer, 43, pad);
  bytes_field(trainer, 45, vocab[static_cast<size_t>(unk)][0].get<std::string>());
  bytes_field(trainer, 47, "</s>");
  if (pad >= 0) bytes_field(trainer, 48, "<pad>");
  bytes_field(out, 2, trainer);

  std::string normalizer;
  bytes_field(normalizer, 1, charsmap.empty() ? "identity" : "nmt_nfkc");
  if (!charsmap.empty()) bytes_field(normalizer, 2, charsmap);
  int_field(normalizer, 3, dummy_prefix ? 1 : 0);
  int_field(normalizer, 4, 1);  // remove_extra_whitespaces
  int_field(normalizer, 5, 1);  // escape_whitespaces
  bytes_field(out, 3, normalizer);
  return out;
}

}  // namespace raylight
