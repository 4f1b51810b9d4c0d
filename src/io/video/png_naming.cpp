// The PNG output naming rules (see png_naming.h).
#include "io/video/png_naming.h"

#include <cstdio>

#include "core/error.h"

namespace raylight::video {

std::string PngNaming::numbered(int64_t index) const {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%05lld", static_cast<long long>(index));
  return prefix + digits + suffix;
}

PngNaming png_naming(const std::string& path) {
  PngNaming n;
  if (!path.empty() && path.back() == '/') {
    n.directory = true;
    n.dir = path;
    while (!n.dir.empty() && n.dir.back() == '/') n.dir.pop_back();
    if (n.dir.empty()) fail("'", path, "' cannot hold PNG frames: give a directory below /");
    n.prefix = n.dir + "/frame_";
    n.suffix = ".png";
    return n;
  }
  if (path.size() < 4 || path.find('.', path.size() - 4) != path.size() - 4)
    fail("'", path, "' is not a .png path");
  n.single = path;
  n.prefix = path.substr(0, path.size() - 4) + "_";
  n.suffix = path.substr(path.size() - 4);
  return n;
}

}  // namespace raylight::video
