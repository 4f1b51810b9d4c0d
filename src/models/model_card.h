// What a checkpoint may say about itself in its safetensors metadata, beyond its tensors:
// sampling defaults it was trained for ("raylight.defaults") and, for a model trained on a
// closed set of prompts, that vocabulary ("raylight.vocabulary"). Raylight's own demo model
// carries both (training/demo/export.py writes them); released checkpoints carry neither,
// and any family can read them, so no model is special-cased above src/models.
//
//   raylight.defaults    {"width": 128, "height": 128, "frames": 9, "steps": 12, "cfg": 4,
//                         "shift": 3, "sampler": "unipc", "fps": 8}   (any subset)
//   raylight.expert      {"role": "high", "pair": "tiny A14B", "boundary": 875,
//                         "cfg_high": 4, "cfg_low": 3}   (one of a two-expert pair)
//   raylight.vocabulary  {"grammar": "a <colour> <shape> ...",
//                         "words": {"colour": ["red", ...], "motion": ["moving left", ...]},
//                         "fillers": ["a", "an", "on", "background"],
//                         "example": "a red circle moving left on a blue background"}
//
// Metadata is untrusted like the rest of a file: every field is type- and range-checked and
// an error names the file and the field.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "models/family.h"

namespace raylight {

struct PromptVocabulary {
  std::string grammar;
  std::vector<std::pair<std::string, std::vector<std::string>>> words;  // category -> phrases
  std::set<std::string> known;                                          // every single word
  std::string example;

  // Lower-case words of `prompt` (letters only) that the vocabulary does not hold, in order.
  std::vector<std::string> unknown_words(const std::string& prompt) const;
  // A few lines for --help: the grammar, each category's phrases, the example.
  std::string describe() const;
};

struct ModelCard {
  // Each field present in the metadata overrides the family's default.
  std::map<std::string, double> numbers;  // width, height, frames, steps, cfg, shift, fps
  std::optional<SamplerKind> sampler;
  std::optional<PromptVocabulary> vocabulary;
  std::optional<ExpertRole> expert;

  // The family's defaults with this card's fields applied.
  SamplingDefaults apply(SamplingDefaults d) const;
};

// Reads the card from `metadata` (an empty card when the keys are absent); `source` names the
// file in errors.
ModelCard read_model_card(const std::map<std::string, std::string>& metadata, const std::string& source);

}  // namespace raylight
