// Which container a video path means. Kept apart so the writer and the readers agree
// on exactly the same rules (extension, case-insensitive; a trailing '/' means PNG frames).
#pragma once

#include <string>

namespace raylight::video {

enum class VideoFormat { Mp4, Webp, Png };

// The format of `path`, or an Error listing the supported extensions.
VideoFormat video_format_of(const std::string& path);

}  // namespace raylight::video
