// FFmpeg error text and log level (see ffmpeg_util.h).
#include "io/video/ffmpeg_util.h"

extern "C" {
#include <libavutil/error.h>
#include <libavutil/log.h>
}

namespace raylight::video {

std::string av_error_text(int errnum) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(errnum, buf, sizeof buf);
  return buf;
}

void quiet_ffmpeg_logs() {
  if (av_log_get_level() == AV_LOG_INFO) av_log_set_level(AV_LOG_ERROR);
}

}  // namespace raylight::video
