#include "parallel/lora/lora_plan.h"

#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "parallel/lora/lora_delta.h"

namespace raylight {

LoraRequest parse_lora_argument(const std::string& arg) {
  if (arg.empty()) fail("--lora needs a file (FILE or FILE:STRENGTH)");
  LoraRequest r{arg, 1.0};
  const size_t colon = arg.rfind(':');
  if (colon != std::string::npos && colon + 1 < arg.size()) {
    const std::string tail = arg.substr(colon + 1);
    char* end = nullptr;
    const double v = std::strtod(tail.c_str(), &end);
    if (end && *end == '\0') {
      if (!std::isfinite(v) || std::fabs(v) > 100.0)
        fail("--lora ", arg, ": strength ", tail, " is not a finite number in [-100, 100]");
      r.path = arg.substr(0, colon);
      r.strength = v;
    }
  }
  if (r.path.empty()) fail("--lora ", arg, ": no file before the strength");
  return r;
}

namespace {

std::string bias_of(const std::string& weight) {
  const std::string w = ".weight";
  if (weight.size() > w.size() && weight.compare(weight.size() - w.size(), w.size(), w) == 0)
    return weight.substr(0, weight.size() - w.size()) + ".bias";
  return "";
}

// The base tensor an adapter patches, or "" when its stem names none.
std::string target_of(const LoraAdapter& a, const std::map<std::string, std::string>& stems, const WeightStore& base) {
  auto it = stems.find(a.stem);
  if (it == stems.end()) return "";
  if (a.kind != AdapterKind::DiffBias) return it->second;
  const std::string b = bias_of(it->second);
  return !b.empty() && base.has(b) ? b : "";
}

void check_fits(const LoraFile& f, const LoraAdapter& a, const std::string& target, const WeightStore& base) {
  const Shape want = base.shape(target);
  const Shape have = adapter_delta_shape(a);
  const bool exact = have == want;
  // A factored delta [out, in] may patch a weight stored with more dimensions ([out, c, kh, kw]).
  const bool flat = a.kind != AdapterKind::Diff && a.kind != AdapterKind::DiffBias && a.kind != AdapterKind::SetWeight &&
                    !want.empty() && want[0] == have[0] && shape_numel(want) == shape_numel(have);
  if (!exact && !flat)
    fail("LoRA file ", f.path, ": ", adapter_kind_name(a.kind), " '", a.stem, "' makes a ", shape_str(have),
         " delta but ", target, " is ", shape_str(want), " (a LoRA for another size of this model?)");
  if (!dtype_is_float(base.stored_dtype(target)))
    fail("LoRA file ", f.path, ": '", a.stem, "' patches ", target, ", which is not a float tensor");
}

}  // namespace

LoraPlan plan_loras(const LoraOptions& options, const std::map<std::string, std::string>& stems,
                    const WeightStore& base, const std::string& family) {
  LoraPlan plan;
  for (const LoraRequest& req : options.files) {
    const LoraFile f = read_lora_file(req.path);
    std::vector<std::string> unmatched = f.unknown_keys;
    size_t matched = 0;
    for (const LoraAdapter& a : f.adapters) {
      const std::string target = target_of(a, stems, base);
      if (target.empty()) {
        unmatched.push_back(a.stem + " (" + adapter_kind_name(a.kind) + ")");
        continue;
      }
      check_fits(f, a, target, base);
      plan.patches[target].push_back({std::make_shared<const LoraAdapter>(a), req.strength, req.path});
      ++matched;
    }
    if (matched == 0)
      fail("LoRA file ", req.path, " patches no weight of this ", family, " model (first key '",
           f.adapters.empty() ? f.unknown_keys.front() : f.adapters.front().stem,
           "'): it is a LoRA for another model family");
    if (!unmatched.empty()) {
      if (!options.skip_unmatched) {
        std::string list;
        for (size_t i = 0; i < unmatched.size() && i < 8; ++i) list += "\n  " + unmatched[i];
        if (unmatched.size() > 8) list += "\n  ... and " + std::to_string(unmatched.size() - 8) + " more";
        fail("LoRA file ", req.path, ": ", unmatched.size(), " of its keys match no weight of this ", family,
             " model:", list, "\n(--lora-skip-unmatched applies the ", matched, " that match)");
      }
      for (const auto& u : unmatched) plan.skipped.push_back(req.path + ": " + u);
    }
  }
  return plan;
}

}  // namespace raylight
