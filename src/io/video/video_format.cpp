// Extension -> format, with the one error message that lists what is supported.
#include "io/video/video_format.h"

#include <cctype>

#include "core/error.h"

namespace raylight::video {

VideoFormat video_format_of(const std::string& path) {
  if (!path.empty() && path.back() == '/') return VideoFormat::Png;
  const size_t slash = path.rfind('/');
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  const size_t dot = name.rfind('.');
  std::string ext = dot == std::string::npos || dot == 0 ? "" : name.substr(dot);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".mp4") return VideoFormat::Mp4;
  if (ext == ".webp") return VideoFormat::Webp;
  if (ext == ".png") return VideoFormat::Png;
  fail(ext.empty() ? std::string("no file extension") : "unsupported extension '" + ext + "'",
       "; supported: .mp4 (H.264), .webp (animated WebP), .png (PNG frames), or a "
       "directory path ending in '/' (PNG frames)");
}

}  // namespace raylight::video
