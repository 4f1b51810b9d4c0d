// Stand-ins for the MP4 and WebP codecs in builds configured with -DRAYLIGHT_VIDEO_IO=OFF
// (used for GPU hosts that lack FFmpeg's and libwebp's shared libraries): asking for
// those formats is an error that says how to get them; PNG still works.
#include "core/error.h"
#include "io/video/codecs.h"

namespace raylight::video {
namespace {

[[noreturn]] void unavailable(const char* format) {
  fail(format, " output is not in this build (configured with -DRAYLIGHT_VIDEO_IO=OFF); "
       "write .png frames, or rebuild with FFmpeg and libwebp");
}

}  // namespace

void encode_mp4(const RgbFrames&, double, const std::string&) { unavailable("MP4"); }
void encode_webp(const RgbFrames&, double, const std::string&) { unavailable("WebP"); }
DecodedVideo decode_mp4(const std::string&, bool) { unavailable("MP4"); }
DecodedVideo decode_webp(const std::string&, bool) { unavailable("WebP"); }

}  // namespace raylight::video
