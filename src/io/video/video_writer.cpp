// write_video: validate, pick the format, stage and commit; every failure becomes one
// raylight::Error that names the output path.
#include "io/video/video_writer.h"

#include <cmath>
#include <exception>

#include "core/error.h"
#include "io/video/codecs.h"
#include "io/video/rgb_frames.h"
#include "io/output_file.h"
#include "io/video/video_format.h"

namespace raylight {

void check_video_output(const std::string& path) {
  try {
    if (video::video_format_of(path) == video::VideoFormat::Png) video::check_png_output(path);
    else check_output_file(path);
  } catch (const Error& e) {
    fail("write_video ", path, ": ", e.what());
  }
}

void write_video(const std::string& path, const Tensor& video, double fps) {
  try {
    const video::VideoFormat format = video::video_format_of(path);
    if (!std::isfinite(fps) || fps <= 0 || fps > 1000) fail("fps must be in (0, 1000], got ", fps);
    const video::RgbFrames rgb = video::rgb_from_tensor(video);
    switch (format) {
      case video::VideoFormat::Mp4:
        write_output_file(path, [&](const std::string& tmp) { video::encode_mp4(rgb, fps, tmp); });
        break;
      case video::VideoFormat::Webp:
        write_output_file(path, [&](const std::string& tmp) { video::encode_webp(rgb, fps, tmp); });
        break;
      case video::VideoFormat::Png:
        video::write_png_output(rgb, path);
        break;
    }
  } catch (const Error& e) {
    fail("write_video ", path, ": ", e.what());
  } catch (const std::exception& e) {  // bad_alloc, filesystem_error, ...
    fail("write_video ", path, ": ", e.what());
  }
}

}  // namespace raylight
