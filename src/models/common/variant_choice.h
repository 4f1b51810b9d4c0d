// Naming a checkpoint whose tensors cannot tell its variant (Wan 2.1 14B vs the Wan 2.2
// A14B experts; Flux dev vs Kontext vs Krea): `--variant` decides, else the file name (the
// variant whose name pieces it holds, the longest match winning), else the first listed.
// The note says which were alike and what decided, for `inspect` and --verbose users.
#pragma once

#include <string>
#include <vector>

namespace raylight {

struct VariantName {
  std::string name;                     // for --variant: "wan2.1-t2v-14b", ...
  std::string description;              // "Wan 2.2 T2V A14B high-noise expert"
  std::vector<std::string> name_parts;  // lower-case pieces of the files people have
  bool supported = true;                // runs in this build
};

struct VariantChoice {
  const VariantName* chosen = nullptr;  // null when `names` is empty
  std::string note;                     // "" unless several variants were alike
};

// Errors: a --variant that is not one of `names` (naming `source` and `shape`, the
// checkpoint's shape-derived name), or a chosen variant this build cannot run.
VariantChoice choose_variant(const std::vector<VariantName>& names, const std::string& source,
                             const std::string& variant, const std::string& shape);

}  // namespace raylight
