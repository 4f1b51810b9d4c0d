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

// The base tensor (and rows) an adapter patches; an empty weight when its stem names none.
LoraTarget target_of(const LoraAdapter& a, const std::map<std::string, LoraTarget>& stems, const WeightStore& base) {
  auto it = stems.find(a.stem);
  if (it == stems.end()) return {};
  if (a.kind != AdapterKind::DiffBias) return it->second;
  LoraTarget t = it->second;
  t.weight = bias_of(it->second.weight);
  if (t.weight.empty() || !base.has(t.weight)) return {};
  return t;
}

void check_fits(const LoraFile& f, const LoraAdapter& a, const LoraTarget& target, const WeightStore& base) {
  Shape want = base.shape(target.weight);
  std::string what = target.weight;
  if (target.rows > 0) {
    if (want.empty() || target.row_offset < 0 || target.row_offset > want[0] || target.rows > want[0] - target.row_offset)
      fail("LoRA file ", f.path, ": '", a.stem, "' names rows ", target.row_offset, "..", target.row_offset + target.rows,
           " of ", target.weight, ", which is ", shape_str(want), " (a LoRA for another size of this model?)");
    want[0] = target.rows;
    what = "rows " + std::to_string(target.row_offset) + ".." + std::to_string(target.row_offset + target.rows) +
           " of " + target.weight;
  }
  if (target.swap_halves && (want.empty() || want[0] % 2))
    fail("LoRA file ", f.path, ": '", a.stem, "' patches ", what, ", which has no two halves to exchange");
  const Shape have = adapter_delta_shape(a);
  const bool exact = have == want;
  // A factored delta [out, in] may patch a weight stored with more dimensions ([out, c, kh, kw]).
  const bool flat = a.kind != AdapterKind::Diff && a.kind != AdapterKind::DiffBias && a.kind != AdapterKind::SetWeight &&
                    !want.empty() && want[0] == have[0] && shape_numel(want) == shape_numel(have);
  if (!exact && !flat)
    fail("LoRA file ", f.path, ": ", adapter_kind_name(a.kind), " '", a.stem, "' makes a ", shape_str(have),
         " delta but ", what, " is ", shape_str(want), " (a LoRA for another size of this model?)");
  if (!dtype_is_float(base.stored_dtype(target.weight)))
    fail("LoRA file ", f.path, ": '", a.stem, "' patches ", target.weight, ", which is not a float tensor");
}

}  // namespace

LoraPlan plan_loras(const LoraOptions& options, const std::map<std::string, LoraTarget>& stems,
                    const WeightStore& base, const std::string& family) {
  LoraPlan plan;
  for (const LoraRequest& req : options.files) {
    const LoraFile f = read_lora_file(req.path);
    std::vector<std::string> unmatched = f.unknown_keys;
    size_t matched = 0;
    for (const LoraAdapter& a : f.adapters) {
      const LoraTarget target = target_of(a, stems, base);
      if (target.weight.empty()) {
        unmatched.push_back(a.stem + " (" + adapter_kind_name(a.kind) + ")");
        continue;
      }
      check_fits(f, a, target, base);
      plan.patches[target.weight].push_back({std::make_shared<const LoraAdapter>(a), req.strength, req.path,
                                             target.row_offset, target.rows, target.swap_halves});
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
