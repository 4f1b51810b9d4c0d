// Writing generated pictures to files.
//
// A decoded picture is a host fp32 tensor [3, H, W] (RGB) with values in [-1, 1] (a video
// of one frame, [3, 1, H, W], is accepted too); values are mapped to bytes as videos are
// (io/video/rgb_frames.h: clamp, round((v + 1) * 127.5)); NaN is an Error.
//
// The format follows the extension of `path` (case-insensitive):
//   .png          8-bit RGB PNG (libpng)
//   .webp         still WebP (libwebp), lossy quality 90; not in builds with
//                 -DRAYLIGHT_VIDEO_IO=OFF
//   .jpg, .jpeg   baseline JPEG (libjpeg), quality 95, 4:2:0; only in builds with
//                 -DRAYLIGHT_JPEG=ON
// Outputs follow io/output_file.h: the encoder writes a temporary next to the path, which is
// renamed into place only when complete (nothing half written is ever visible), a folder,
// device or socket where the file goes is refused, a link is followed, a pipe is written
// through. Every failure is a raylight::Error naming `path`.
#pragma once

#include <string>

#include "core/tensor.h"

namespace raylight {

// True when `path`'s extension is a picture format this build writes (.png counts too:
// it is both a picture and a one-frame video).
bool is_image_path(const std::string& path);
// The checks write_image makes on `path` (format, output policy) without writing.
void check_image_output(const std::string& path);
void write_image(const std::string& path, const Tensor& picture);

}  // namespace raylight
