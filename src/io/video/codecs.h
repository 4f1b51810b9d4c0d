// The per-format encoders and decoders behind write_video / probe_video. Internal to
// src/io/video: callers go through video_writer.h and video_probe.h, which validate
// input, pick the format, stage temporaries and add the path to error messages.
#pragma once

#include <string>

#include "io/video/rgb_frames.h"
#include "io/video/video_probe.h"

namespace raylight::video {

// Encoders: write a complete file at `file` (a temporary name; the caller renames it).
void encode_mp4(const RgbFrames& rgb, double fps, const std::string& file);
void encode_webp(const RgbFrames& rgb, double fps, const std::string& file);
void encode_png(const uint8_t* rgb, int64_t width, int64_t height, const std::string& file);

// The whole PNG output for `path` (single file, numbered sequence or directory),
// staged and committed as described in video_writer.h.
void write_png_output(const RgbFrames& rgb, const std::string& path);
// The checks write_png_output makes on `path` before encoding (see video_writer.h).
void check_png_output(const std::string& path);

struct DecodedVideo {
  VideoInfo info;
  RgbFrames rgb;  // filled only when the decoder was asked for pixels
};

DecodedVideo decode_mp4(const std::string& path, bool want_pixels);
DecodedVideo decode_webp(const std::string& path, bool want_pixels);
DecodedVideo decode_png_output(const std::string& path, bool want_pixels);

}  // namespace raylight::video
