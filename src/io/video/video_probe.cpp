// probe_video / read_video_frames: pick the decoder by path and name the path in errors.
#include "io/video/video_probe.h"

#include <exception>

#include "core/error.h"
#include "io/video/codecs.h"
#include "io/video/video_format.h"

namespace raylight {
namespace {

video::DecodedVideo decode(const std::string& path, bool want_pixels) {
  try {
    switch (video::video_format_of(path)) {
      case video::VideoFormat::Mp4:
        return video::decode_mp4(path, want_pixels);
      case video::VideoFormat::Webp:
        return video::decode_webp(path, want_pixels);
      case video::VideoFormat::Png:
        return video::decode_png_output(path, want_pixels);
    }
    fail("unknown video format");
  } catch (const Error& e) {
    fail("read video ", path, ": ", e.what());
  } catch (const std::exception& e) {
    fail("read video ", path, ": ", e.what());
  }
}

}  // namespace

VideoInfo probe_video(const std::string& path) { return decode(path, false).info; }

Tensor read_video_frames(const std::string& path) {
  return video::tensor_from_rgb(decode(path, true).rgb);
}

}  // namespace raylight
