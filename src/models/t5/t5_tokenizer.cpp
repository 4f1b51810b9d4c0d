// SentencePiece loading with every check done up front (the model parses, has pieces and an
// EOS piece), so later calls only turn SentencePiece's rare error statuses into Errors.
#include "models/t5/t5_tokenizer.h"

#include <sentencepiece_processor.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/t5/t5_tokenizer_json.h"
#include "parallel/weight_store.h"

namespace raylight {
namespace {

// The processor after a load, or an Error naming `source` and SentencePiece's reason.
std::unique_ptr<sentencepiece::SentencePieceProcessor> checked(
    std::unique_ptr<sentencepiece::SentencePieceProcessor> sp,
    const sentencepiece::util::Status& status, const std::string& source) {
  if (!status.ok())
    fail("tokenizer ", source, ": not a valid SentencePiece model (", status.ToString(), ")");
  if (sp->GetPieceSize() <= 0)
    fail("tokenizer ", source, ": the SentencePiece model has no pieces");
  if (sp->eos_id() < 0)
    fail("tokenizer ", source, ": the SentencePiece model has no end-of-sequence piece");
  return sp;
}

}  // namespace

T5Tokenizer::T5Tokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> sp,
                         std::string source)
    : sp_(std::move(sp)), source_(std::move(source)) {}
T5Tokenizer::T5Tokenizer(T5Tokenizer&&) noexcept = default;
T5Tokenizer& T5Tokenizer::operator=(T5Tokenizer&&) noexcept = default;
T5Tokenizer::~T5Tokenizer() = default;

T5Tokenizer T5Tokenizer::from_bytes(std::string_view serialized, const std::string& source) {
  if (serialized.empty()) fail("tokenizer ", source, ": the SentencePiece model is empty");
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = sp->LoadFromSerializedProto(serialized);
  return T5Tokenizer(checked(std::move(sp), status, source), source);
}

T5Tokenizer T5Tokenizer::from_tokenizer_json(std::string_view json, const std::string& source) {
  return from_bytes(spiece_model_from_tokenizer_json(json, source), source);
}

T5Tokenizer T5Tokenizer::from_file(const std::string& path_in) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string path = path_in;
  if (fs::is_directory(path, ec)) {
    for (const char* inside : {"spiece.model", "tokenizer.json", "comfy/text_encoders/t5_tokenizer/tokenizer.json"})
      if (fs::is_regular_file(fs::path(path_in) / inside, ec)) {
        path = (fs::path(path_in) / inside).string();
        break;
      }
    if (path == path_in)
      fail("tokenizer ", path, ": a folder with no spiece.model, tokenizer.json or "
           "comfy/text_encoders/t5_tokenizer/tokenizer.json");
  }
  if (!fs::is_regular_file(path, ec)) fail("tokenizer ", path, ": no such file");
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
    const auto size = fs::file_size(path, ec);
    if (ec) fail("tokenizer ", path, ": cannot read its size");
    if (size > kMaxTokenizerJsonBytes)
      fail("tokenizer ", path, " is ", size, " bytes; at most ", kMaxTokenizerJsonBytes, " are read");
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("tokenizer ", path, ": cannot be opened");
    std::ostringstream text;
    text << in.rdbuf();
    return from_tokenizer_json(text.str(), path);
  }
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = sp->Load(path);
  return T5Tokenizer(checked(std::move(sp), status, path), path);
}

bool T5Tokenizer::has_embedded_model(const SafetensorsFile& file) {
  return file.has(kSpieceTensor);
}

T5Tokenizer T5Tokenizer::from_safetensors(const SafetensorsFile& file) {
  const std::string source = file.path() + ": " + kSpieceTensor;
  if (!file.has(kSpieceTensor))
    fail("tokenizer ", file.path(), ": the file has no ", kSpieceTensor,
         " tensor (pass a SentencePiece .model file instead)");
  const TensorInfo& info = file.info(kSpieceTensor);
  if (info.dtype != DType::U8 || info.shape.size() != 1)
    fail("tokenizer ", source, ": expected a 1-D U8 tensor, got ", dtype_name(info.dtype), " ",
         shape_str(info.shape));
  Tensor bytes = file.tensor(kSpieceTensor);
  return from_bytes(std::string_view(static_cast<const char*>(bytes.raw()), bytes.nbytes()),
                    source);
}

std::unique_ptr<T5Tokenizer> T5Tokenizer::from_store(const WeightStore& weights, const std::string& source) {
  if (!weights.has(kSpieceTensor)) return nullptr;
  const std::string where = source + ": " + kSpieceTensor;
  const Tensor bytes = weights.stored(kSpieceTensor).bytes;
  if (bytes.dtype() != DType::U8 || bytes.ndim() != 1)
    fail("tokenizer ", where, ": expected a 1-D U8 tensor, got ", dtype_name(bytes.dtype()), " ",
         shape_str(bytes.shape()));
  return std::make_unique<T5Tokenizer>(
      from_bytes(std::string_view(static_cast<const char*>(bytes.raw()), bytes.nbytes()), where));
}

T5Tokenizer T5Tokenizer::from_safetensors(const std::string& path) {
  return from_safetensors(*SafetensorsFile::open(path));
}

std::vector<int> T5Tokenizer::encode(const std::string& text, int max_length,
                                     size_t* uncut) const {
  if (max_length < 1) fail("tokenizer: max_length must be at least 1, got ", max_length);
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  if (!status.ok()) fail("tokenizer ", source_, ": cannot encode text (", status.ToString(), ")");
  if (uncut) *uncut = ids.size() + 1;
  if (ids.size() > static_cast<size_t>(max_length - 1)) ids.resize(max_length - 1);
  ids.push_back(sp_->eos_id());
  return ids;
}

std::string T5Tokenizer::decode(const std::vector<int>& ids) const {
  std::string text;
  const auto status = sp_->Decode(ids, &text);
  if (!status.ok()) fail("tokenizer ", source_, ": cannot decode ids (", status.ToString(), ")");
  return text;
}

int T5Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }
int T5Tokenizer::eos_id() const { return sp_->eos_id(); }
int T5Tokenizer::pad_id() const { return sp_->pad_id(); }

}  // namespace raylight
