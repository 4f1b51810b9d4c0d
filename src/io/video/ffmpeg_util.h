// Small helpers shared by the MP4 writer and reader: FFmpeg error strings and quieting
// libx264/libav* informational logging (which would otherwise print to stderr).
#pragma once

#include <string>

namespace raylight::video {

std::string av_error_text(int errnum);

// Lowers FFmpeg's log level to errors only, unless the program already chose a level.
void quiet_ffmpeg_logs();

}  // namespace raylight::video
