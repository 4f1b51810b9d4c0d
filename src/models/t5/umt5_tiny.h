// The embedded tiny umT5 encoder: the real architecture at d_model 64 (the tiny Wan DiT's
// text_dim), with weights made deterministically from the documented noise generator and a
// 500-piece SentencePiece model compiled into the binary (tiny_spiece_model.inc, written by
// tests/fixtures/make_umt5_golden.py), so `--model tiny` runs text-to-video with no files.
#pragma once

#include <memory>
#include <string_view>

#include "models/t5/t5_tokenizer.h"
#include "models/t5/umt5_config.h"
#include "parallel/weight_store.h"

namespace raylight {

// d_model 64, 2 layers, 4 heads of 16, d_ff 96, vocab 500 (the tiny tokenizer's size).
UMT5Config umt5_tiny_config();
// Weights under HF names, fp32, with the tokenizer as the `spiece_model` tensor.
std::unique_ptr<MemoryWeights> umt5_tiny_weights();
// The tiny SentencePiece model (unigram, 500 pieces, pad 0 / eos 1 / unk 2).
std::string_view umt5_tiny_spiece_model();
T5Tokenizer umt5_tiny_tokenizer();

}  // namespace raylight
