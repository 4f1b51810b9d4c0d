#include "parallel/lora/lora_file.h"

#include <utility>

#include "core/error.h"
#include "core/finite.h"
#include "io/safetensors.h"

namespace raylight {

const char* adapter_kind_name(AdapterKind kind) {
  switch (kind) {
    case AdapterKind::LowRank: return "LoRA";
    case AdapterKind::LoHa: return "LoHa";
    case AdapterKind::LoKr: return "LoKr";
    case AdapterKind::Diff: return "weight difference";
    case AdapterKind::DiffBias: return "bias difference";
    case AdapterKind::SetWeight: return "weight replacement";
  }
  return "?";
}

namespace {

struct Suffix {
  const char* text;
  AdapterKind kind;
  const char* role;
};

// Longest first where one suffix ends another (".diff_b" before ".diff").
const Suffix kSuffixes[] = {
    {".lora_up.weight", AdapterKind::LowRank, "up"},
    {".lora_down.weight", AdapterKind::LowRank, "down"},
    {".lora_B.weight", AdapterKind::LowRank, "up"},
    {".lora_A.weight", AdapterKind::LowRank, "down"},
    {".lora_B.default.weight", AdapterKind::LowRank, "up"},
    {".lora_A.default.weight", AdapterKind::LowRank, "down"},
    {".lora_linear_layer.up.weight", AdapterKind::LowRank, "up"},
    {".lora_linear_layer.down.weight", AdapterKind::LowRank, "down"},
    {"_lora.up.weight", AdapterKind::LowRank, "up"},
    {"_lora.down.weight", AdapterKind::LowRank, "down"},
    {".lora.up.weight", AdapterKind::LowRank, "up"},
    {".lora.down.weight", AdapterKind::LowRank, "down"},
    {".hada_w1_a", AdapterKind::LoHa, "w1_a"},
    {".hada_w1_b", AdapterKind::LoHa, "w1_b"},
    {".hada_w2_a", AdapterKind::LoHa, "w2_a"},
    {".hada_w2_b", AdapterKind::LoHa, "w2_b"},
    {".lokr_w1_a", AdapterKind::LoKr, "w1_a"},
    {".lokr_w1_b", AdapterKind::LoKr, "w1_b"},
    {".lokr_w2_a", AdapterKind::LoKr, "w2_a"},
    {".lokr_w2_b", AdapterKind::LoKr, "w2_b"},
    {".lokr_w1", AdapterKind::LoKr, "w1"},
    {".lokr_w2", AdapterKind::LoKr, "w2"},
    {".diff_b", AdapterKind::DiffBias, "diff"},
    {".diff", AdapterKind::Diff, "diff"},
    {".set_weight", AdapterKind::SetWeight, "diff"},
};

// Convolution-only or DoRA forms: refused, never half-applied.
const char* const kRefused[] = {".lora_mid.weight", ".hada_t1", ".hada_t2", ".lokr_t2", ".dora_scale",
                                ".lora_magnitude_vector"};

bool ends_with(const std::string& s, const std::string& end) {
  return s.size() > end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
}

void need(const LoraFile& f, const LoraAdapter& a, const char* role) {
  if (!a.parts.count(role))
    fail("LoRA file ", f.path, ": ", adapter_kind_name(a.kind), " '", a.stem, "' has no ", role, " tensor");
}

void check_matrix(const LoraFile& f, const LoraAdapter& a, const char* role) {
  const Tensor& t = a.parts.at(role);
  if (t.ndim() != 2 || t.dim(0) < 1 || t.dim(1) < 1)
    fail("LoRA file ", f.path, ": '", a.stem, "' ", role, " is ", shape_str(t.shape()),
         "; a DiT LoRA patches matrices, so it must be a non-empty [rows, columns]");
}

void check_adapter(const LoraFile& f, const LoraAdapter& a) {
  switch (a.kind) {
    case AdapterKind::LowRank: {
      need(f, a, "up"), need(f, a, "down");
      check_matrix(f, a, "up"), check_matrix(f, a, "down");
      if (a.parts.at("up").dim(1) != a.parts.at("down").dim(0))
        fail("LoRA file ", f.path, ": '", a.stem, "' up ", shape_str(a.parts.at("up").shape()), " and down ",
             shape_str(a.parts.at("down").shape()), " disagree on the rank");
      break;
    }
    case AdapterKind::LoHa:
      for (const char* r : {"w1_a", "w1_b", "w2_a", "w2_b"}) need(f, a, r), check_matrix(f, a, r);
      if (a.parts.at("w1_a").dim(1) != a.parts.at("w1_b").dim(0) || a.parts.at("w2_a").dim(1) != a.parts.at("w2_b").dim(0))
        fail("LoRA file ", f.path, ": LoHa '", a.stem, "' factor ranks disagree");
      break;
    case AdapterKind::LoKr:
      for (const char* w : {"w1", "w2"}) {
        const std::string s(w);
        const bool whole = a.parts.count(s) != 0, split = a.parts.count(s + "_a") || a.parts.count(s + "_b");
        if (whole == split)
          fail("LoRA file ", f.path, ": LoKr '", a.stem, "' needs lokr_", s, " or both lokr_", s, "_a and lokr_", s,
               "_b");
        if (whole) check_matrix(f, a, w);
        else {
          need(f, a, (s + "_a").c_str()), need(f, a, (s + "_b").c_str());
          check_matrix(f, a, (s + "_a").c_str()), check_matrix(f, a, (s + "_b").c_str());
          if (a.parts.at(s + "_a").dim(1) != a.parts.at(s + "_b").dim(0))
            fail("LoRA file ", f.path, ": LoKr '", a.stem, "' ", s, " factor ranks disagree");
        }
      }
      break;
    default:
      break;
  }
  if (a.alpha && (a.kind == AdapterKind::Diff || a.kind == AdapterKind::DiffBias || a.kind == AdapterKind::SetWeight))
    fail("LoRA file ", f.path, ": '", a.stem, "' has an alpha but no low-rank tensors");
}

}  // namespace

LoraFile read_lora_file(const std::string& path) {
  auto file = SafetensorsFile::open(path);
  LoraFile out;
  out.path = path;
  // (stem, kind) -> adapter; alphas wait until every key is seen.
  std::map<std::pair<std::string, int>, LoraAdapter> found;
  std::map<std::string, double> alphas;
  for (const TensorInfo& info : file->tensors()) {
    const std::string& key = info.name;
    for (const char* r : kRefused)
      if (ends_with(key, r))
        fail("LoRA file ", path, ": key '", key, "' is a form raylight does not apply (", r + 1,
             ": convolution or DoRA adapters)");
    const std::string what = "LoRA file " + path + " key '" + key + "'";
    if (ends_with(key, ".alpha")) {
      const Tensor a = finite_f32(file->tensor(key), what);
      if (a.numel() != 1) fail(what, " holds ", a.numel(), " values; an alpha is one number");
      alphas[key.substr(0, key.size() - 6)] = a.f32()[0];
      continue;
    }
    const Suffix* hit = nullptr;
    for (const Suffix& s : kSuffixes)
      if (ends_with(key, s.text)) {
        hit = &s;
        break;
      }
    if (!hit) {
      out.unknown_keys.push_back(key);
      continue;
    }
    const std::string stem = key.substr(0, key.size() - std::string(hit->text).size());
    LoraAdapter& a = found[{stem, static_cast<int>(hit->kind)}];
    a.stem = stem;
    a.kind = hit->kind;
    if (a.parts.count(hit->role)) fail(what, " repeats the ", hit->role, " tensor of '", stem, "'");
    a.parts[hit->role] = finite_f32(file->tensor(key), what).clone();
  }
  file->check_intact();
  for (auto& [k, a] : found) {
    auto al = alphas.find(a.stem);
    if (al != alphas.end() &&
        (a.kind == AdapterKind::LowRank || a.kind == AdapterKind::LoHa || a.kind == AdapterKind::LoKr)) {
      a.alpha = al->second;
      alphas.erase(al);
    }
  }
  for (const auto& [stem, v] : alphas) out.unknown_keys.push_back(stem + ".alpha");
  for (auto& [k, a] : found) {
    check_adapter(out, a);
    out.adapters.push_back(std::move(a));
  }
  if (out.adapters.empty())
    fail("LoRA file ", path, " holds no LoRA tensors (", file->tensors().size(),
         " keys, none with a lora_up/lora_down, lora_A/lora_B, hada_, lokr_ or diff suffix)");
  return out;
}

}  // namespace raylight
