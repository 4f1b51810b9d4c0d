// Reading back the files write_video produces, so tests (and tools) can check frame
// count, size, timing and content. `path` is what was given to write_video: for a
// .png path this finds the single file or its numbered sequence, for "dir/" the
// dir/frame_NNNNN.png sequence.
//
// MP4 is demuxed and decoded with libavformat/libavcodec (every frame is decoded and
// counted; the container's frame count is not trusted), WebP with libwebpmux + libwebp
// (each frame decoded and composited onto the canvas as the WebP spec describes), PNG
// with libpng. Every failure is a raylight::Error naming the path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace raylight {

struct VideoInfo {
  int64_t frames = 0;
  int64_t width = 0;
  int64_t height = 0;
  // Presentation time of each frame in seconds (empty for PNG, which has no timing).
  std::vector<double> timestamps_s;
  // Time at which the last frame ends, in seconds (0 for PNG).
  double duration_s = 0;
  // WebP: number of loops, 0 = forever. -1 for formats without a loop count.
  int loop_count = -1;
};

VideoInfo probe_video(const std::string& path);

// The decoded frames as host fp32 [3, F, H, W] in [-1, 1] (byte b maps to b / 127.5 - 1).
Tensor read_video_frames(const std::string& path);

}  // namespace raylight
