// CLIP text as a family part (models/family.h): a TextEncoder whose output is "pooled"
// [width] (what Flux's DiT reads as its vector conditioning; CLIP-L: 768). The hidden states
// [77, width] are ClipTextModel::encode's (no family reads them yet). Recognition and
// construction for the registry live here too.
#pragma once

#include <memory>
#include <string>

#include "models/family.h"

namespace raylight {

// Tensors a store may carry its tokenizer in (uint8, the files' bytes), as the embedded
// tiny encoder does; ComfyUI's files carry none.
constexpr const char* kClipVocabTensor = "clip_tokenizer.vocab_json";
constexpr const char* kClipMergesTensor = "clip_tokenizer.merges_txt";

bool clip_text_matches(const WeightStore& weights);
// "CLIP-L" or "CLIP text custom (...)"; checks every tensor (errors name the first misfit).
std::string clip_text_variant(const WeightStore& weights);
// A TextEncoder over `weights`. The tokenizer: `tokenizer_path` when it holds vocab.json and
// merges.txt (the folder, ComfyUI's folder, or the vocab.json file; clip_tokenizer.h), else
// the store's tokenizer tensors; fails naming `source` when neither has one.
std::unique_ptr<TextEncoder> make_clip_text_encoder(std::unique_ptr<WeightStore> weights, Backend& backend,
                                                    const std::string& source, const std::string& tokenizer_path);

}  // namespace raylight
