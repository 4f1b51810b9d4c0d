#include "models/common/variant_choice.h"

#include <cctype>

#include "core/error.h"

namespace raylight {

VariantChoice choose_variant(const std::vector<VariantName>& names, const std::string& source,
                             const std::string& variant, const std::string& shape) {
  std::string list;
  for (const auto& v : names) list += (list.empty() ? "" : ", ") + v.name;
  VariantChoice c;
  c.chosen = names.empty() ? nullptr : &names[0];
  std::string how = "default";
  if (!variant.empty()) {
    c.chosen = nullptr;
    for (const auto& v : names)
      if (v.name == variant) c.chosen = &v;
    if (!c.chosen)
      fail("--variant ", variant, " does not fit ", source, " (", shape, "); ",
           names.empty() ? std::string("it has no named variants") : "it can be: " + list);
    how = "--variant";
  } else {
    std::string file = source.substr(source.find_last_of('/') + 1);
    for (auto& ch : file) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    size_t best = 0;
    for (const auto& v : names) {
      size_t matched = 0;
      bool all = !v.name_parts.empty();
      for (const auto& part : v.name_parts) {
        all = all && file.find(part) != std::string::npos;
        matched += part.size();
      }
      if (all && matched > best) {
        best = matched;
        c.chosen = &v;
        how = "the file name";
      }
    }
  }
  if (c.chosen && !c.chosen->supported)
    fail(source, " is a ", c.chosen->description, " (by ", how, "), which this build cannot run yet");
  if (names.size() > 1) {
    std::string alike;
    for (const auto& v : names) alike += (alike.empty() ? "" : "; ") + v.description + " (" + v.name + ")";
    c.note = "tensors alike for: " + alike + ". Chosen: " + c.chosen->name + " by " + how + " (--variant NAME decides)";
  }
  return c;
}

}  // namespace raylight
