// The T5 / umT5 tokenizer: Debian's libsentencepiece behind a small value type, so the
// encoder and the CLI never see its headers. It reproduces what the Python tools feed the
// model: SentencePiece ids, cut to max_length - 1, then the end-of-sequence id (1 in every
// T5 vocabulary), like HF's T5 tokenizers with add_special_tokens and truncation at 512
// (Wan's text_len) and ComfyUI's SPieceTokenizer(add_eos=True).
//
// The model comes from a .model file or from the bytes of the uint8 tensor `spiece_model`
// that ComfyUI stores inside its umT5 safetensors files. Loading problems are
// raylight::Errors that name the file (or tensor) and say what is wrong.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace raylight {

class SafetensorsFile;
class WeightStore;

class T5Tokenizer {
 public:
  static constexpr int kMaxLength = 512;
  // Name of the tensor holding the serialized model in ComfyUI text-encoder files.
  static constexpr const char* kSpieceTensor = "spiece_model";

  // A SentencePiece .model file, an HF tokenizer.json of the T5 kind (t5_tokenizer_json.h),
  // or a folder holding either (spiece.model first), or a ComfyUI folder (its
  // comfy/text_encoders/t5_tokenizer/).
  static T5Tokenizer from_file(const std::string& path);
  // The text of a tokenizer.json; `source` names it in errors.
  static T5Tokenizer from_tokenizer_json(std::string_view json, const std::string& source);
  // A serialized ModelProto; `source` names it in errors ("file.safetensors: spiece_model").
  static T5Tokenizer from_bytes(std::string_view serialized, const std::string& source);
  // The `spiece_model` tensor (uint8, 1-D) of a safetensors file.
  static T5Tokenizer from_safetensors(const SafetensorsFile& file);
  static T5Tokenizer from_safetensors(const std::string& path);
  static bool has_embedded_model(const SafetensorsFile& file);
  // The `spiece_model` tensor of a weight store, or null when it has none.
  static std::unique_ptr<T5Tokenizer> from_store(const WeightStore& weights, const std::string& source);

  T5Tokenizer(T5Tokenizer&&) noexcept;
  T5Tokenizer& operator=(T5Tokenizer&&) noexcept;
  ~T5Tokenizer();

  // Ids of `text` with EOS appended; at most max_length ids (EOS kept when cut). `uncut`
  // receives how many ids there would be without the cut (so callers can warn).
  std::vector<int> encode(const std::string& text, int max_length = kMaxLength,
                          size_t* uncut = nullptr) const;
  std::string decode(const std::vector<int>& ids) const;
  int vocab_size() const;
  int eos_id() const;
  int pad_id() const;
  // Where the model came from (path, or "path: spiece_model", or "embedded ...").
  const std::string& source() const { return source_; }

 private:
  T5Tokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> sp, std::string source);
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string source_;
};

}  // namespace raylight
