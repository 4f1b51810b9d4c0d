// A SentencePiece model built from an HF `tokenizers` tokenizer.json of the T5 kind (ComfyUI
// ships T5-XXL's as comfy/text_encoders/t5_tokenizer/tokenizer.json, with no spiece.model):
// the Unigram pieces and scores, the unk id, the Precompiled normalizer's charsmap (T5's
// nmt_nfkc rules), whether Metaspace prepends "▁" (add_dummy_prefix), and the special
// tokens (</s> and <pad> as control pieces, other added specials as user-defined pieces that
// match in text, <0xHH> byte pieces where byte_fallback is set). Loading that model with
// libsentencepiece gives the ids of the original spiece.model (HF's slow T5Tokenizer).
// The model is written in protobuf's wire format by hand: Debian's libsentencepiece-dev
// ships no .pb.h, and the few fields needed do not warrant libprotobuf.
#pragma once

#include <string>
#include <string_view>

namespace raylight {

constexpr size_t kMaxTokenizerJsonBytes = size_t{64} << 20;

// A serialized sentencepiece ModelProto; errors name `source` and what in the JSON is wrong
// or outside what this reads (another model type, a normalizer SentencePiece cannot express).
std::string spiece_model_from_tokenizer_json(std::string_view json, const std::string& source);

}  // namespace raylight
