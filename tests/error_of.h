// The message of the raylight::Error `f` throws, or "(no error)": for tests of refusals.
#pragma once

#include <functional>
#include <string>

#include "core/error.h"

namespace raylight::test {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace raylight::test
