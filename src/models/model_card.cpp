#include "models/model_card.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json_checks.h"

namespace raylight {
namespace {

constexpr size_t kMaxCardBytes = 64 * 1024;  // a card is a few hundred bytes
constexpr int kMaxDepth = 8;

nlohmann::ordered_json parse(const std::map<std::string, std::string>& metadata, const std::string& key,
                     const std::string& source) {
  const std::string& text = metadata.at(key);
  if (text.size() > kMaxCardBytes) fail(source, ": metadata '", key, "' is longer than ", kMaxCardBytes, " bytes");
  if (json_nesting_depth(text, kMaxDepth) > kMaxDepth)
    fail(source, ": metadata '", key, "' nests deeper than ", kMaxDepth, " levels");
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(source, ": metadata '", key, "' is not valid JSON: ", e.what());
  }
  if (!j.is_object()) fail(source, ": metadata '", key, "' is not a JSON object");
  return j;
}

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  std::string w;
  for (char ch : text + " ") {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (std::isalpha(c)) {
      w += static_cast<char>(std::tolower(c));
    } else if (!w.empty()) {
      out.push_back(w);
      w.clear();
    }
  }
  return out;
}

std::string string_field(const nlohmann::ordered_json& j, const char* name, const std::string& source) {
  auto it = j.find(name);
  if (it == j.end()) return "";
  if (!it->is_string()) fail(source, ": raylight.vocabulary field '", name, "' is not a string");
  return it->get<std::string>();
}

std::vector<std::string> phrase_list(const nlohmann::ordered_json& j, const std::string& what, const std::string& source) {
  if (!j.is_array()) fail(source, ": raylight.vocabulary ", what, " is not a list of strings");
  std::vector<std::string> out;
  for (const auto& p : j) {
    if (!p.is_string() || p.get<std::string>().empty())
      fail(source, ": raylight.vocabulary ", what, " holds something other than a non-empty string");
    out.push_back(p.get<std::string>());
  }
  return out;
}

PromptVocabulary read_vocabulary(const nlohmann::ordered_json& j, const std::string& source) {
  PromptVocabulary v;
  v.grammar = string_field(j, "grammar", source);
  v.example = string_field(j, "example", source);
  auto words = j.find("words");
  if (words == j.end() || !words->is_object() || words->empty())
    fail(source, ": raylight.vocabulary has no 'words' object of categories");
  for (const auto& [category, phrases] : words->items()) {
    v.words.emplace_back(category, phrase_list(phrases, "category '" + category + "'", source));
    for (const auto& p : v.words.back().second)
      for (auto& w : words_of(p)) v.known.insert(w);
  }
  if (auto f = j.find("fillers"); f != j.end())
    for (const auto& p : phrase_list(*f, "'fillers'", source))
      for (auto& w : words_of(p)) v.known.insert(w);
  return v;
}

// Allowed range of each numeric default; integers where the name says so.
struct NumberRule {
  const char* name;
  double lo, hi;
  bool integer;
};
constexpr NumberRule kNumbers[] = {{"width", 16, 16384, true}, {"height", 16, 16384, true},
                                   {"frames", 1, 100000, true}, {"steps", 1, 10000, true},
                                   {"cfg", 0, 100, false},      {"shift", 0.01, 100, false},
                                   {"fps", 0.1, 240, false}};

}  // namespace

std::vector<std::string> PromptVocabulary::unknown_words(const std::string& prompt) const {
  std::vector<std::string> out;
  for (const auto& w : words_of(prompt))
    if (!known.count(w) && std::find(out.begin(), out.end(), w) == out.end()) out.push_back(w);
  return out;
}

std::string PromptVocabulary::describe() const {
  std::string s;
  if (!grammar.empty()) s += "  prompts: " + grammar + "\n";
  for (const auto& [category, phrases] : words) {
    s += "  " + category + ":";
    for (size_t i = 0; i < phrases.size(); ++i) s += (i ? ", " : " ") + phrases[i];
    s += "\n";
  }
  if (!example.empty()) s += "  e.g. \"" + example + "\"\n";
  return s;
}

namespace {

ExpertRole read_expert(const nlohmann::ordered_json& j, const std::string& source) {
  if (!j.is_object()) fail(source, ": raylight.expert must be a JSON object");
  ExpertRole r;
  bool has_role = false, has_pair = false, has_boundary = false;
  for (const auto& [key, value] : j.items()) {
    if (key == "role" || key == "pair") {
      if (!value.is_string()) fail(source, ": raylight.expert '", key, "' must be a string");
      const std::string v = value.get<std::string>();
      if (key == "role") {
        if (v != "high" && v != "low") fail(source, ": raylight.expert 'role' must be \"high\" or \"low\"");
        r.high_noise = v == "high";
        has_role = true;
      } else {
        if (v.empty() || v.size() > 200) fail(source, ": raylight.expert 'pair' must be a name of 1 to 200 characters");
        r.pair = v;
        has_pair = true;
      }
      continue;
    }
    double* target = key == "boundary" ? &r.boundary : key == "cfg_high" ? &r.cfg_high : key == "cfg_low" ? &r.cfg_low : nullptr;
    if (!target) fail(source, ": raylight.expert has an unknown field '", key, "'");
    if (!value.is_number()) fail(source, ": raylight.expert '", key, "' is not a number");
    const double x = value.get<double>();
    const double hi = key == "boundary" ? 1000.0 : 100.0;
    if (!std::isfinite(x) || x < 0 || x > hi)
      fail(source, ": raylight.expert '", key, "' is ", value.dump(), "; expected a number in [0, ", hi, "]");
    *target = x;
    has_boundary = has_boundary || key == "boundary";
  }
  if (!has_role || !has_pair || !has_boundary) fail(source, ": raylight.expert needs 'role', 'pair' and 'boundary'");
  return r;
}

}  // namespace

SamplingDefaults ModelCard::apply(SamplingDefaults d) const {
  for (const auto& [name, value] : numbers) {
    if (name == "width") d.width = static_cast<int64_t>(value);
    else if (name == "height") d.height = static_cast<int64_t>(value);
    else if (name == "frames") d.frames = static_cast<int64_t>(value);
    else if (name == "steps") d.steps = static_cast<int>(value);
    else if (name == "cfg") d.cfg = value;
    else if (name == "shift") d.shift = value;
    else if (name == "fps") d.fps = value;
  }
  if (sampler) d.sampler = *sampler;
  return d;
}

ModelCard read_model_card(const std::map<std::string, std::string>& metadata, const std::string& source) {
  ModelCard card;
  if (metadata.count("raylight.defaults")) {
    const nlohmann::ordered_json j = parse(metadata, "raylight.defaults", source);
    for (const auto& [key, value] : j.items()) {
      if (key == "sampler") {
        SamplerKind k;
        if (!value.is_string() || !sampler_from_name(value.get<std::string>(), &k))
          fail(source, ": raylight.defaults 'sampler' must be euler, unipc or dpmpp2m");
        card.sampler = k;
        continue;
      }
      const NumberRule* rule = nullptr;
      for (const auto& r : kNumbers)
        if (key == r.name) rule = &r;
      if (!rule) fail(source, ": raylight.defaults has an unknown field '", key, "'");
      if (!value.is_number()) fail(source, ": raylight.defaults '", key, "' is not a number");
      const double x = value.get<double>();
      if (!std::isfinite(x) || x < rule->lo || x > rule->hi || (rule->integer && x != std::floor(x)))
        fail(source, ": raylight.defaults '", key, "' is ", value.dump(), "; expected ",
             rule->integer ? "an integer" : "a number", " in [", rule->lo, ", ", rule->hi, "]");
      card.numbers[key] = x;
    }
  }
  if (metadata.count("raylight.expert")) card.expert = read_expert(parse(metadata, "raylight.expert", source), source);
  if (metadata.count("raylight.vocabulary"))
    card.vocabulary = read_vocabulary(parse(metadata, "raylight.vocabulary", source), source);
  return card;
}

}  // namespace raylight
