// Writing generated videos to files.
//
// A decoded video is a host fp32 tensor [3, F, H, W] (RGB, F frames) with values in
// [-1, 1]. Values are clamped to [-1, 1] and mapped to 0..255 with rounding
// (round((v + 1) * 127.5)); NaN is an Error rather than a silent black pixel.
//
// The format follows the extension of `path` (case-insensitive):
//   .mp4   H.264 (libx264, yuv420p, CRF 18, BT.709 limited range) in an MP4 container;
//          frame i is presented at i / fps seconds. H.264 4:2:0 needs even sizes, so an
//          odd width or height is padded by one column/row repeating the last one: the
//          file is (W rounded up to even) x (H rounded up to even).
//   .webp  Animated WebP (libwebp's WebPAnimEncoder, lossy quality 90, loops forever);
//          frame i starts at round(i * 1000 / fps) ms. WebPAnimEncoder merges a frame
//          that is identical to the previous one into it (one longer frame), so such a
//          file decodes to fewer frames with the same total duration.
//   .png   F == 1: one PNG at `path`. F > 1: a numbered sequence next to it:
//          "out.png" becomes out_00000.png, out_00001.png, ... (5 digits, from 0).
//   dir/   (a path ending in '/') PNG frames dir/frame_00000.png, ... for any F; the
//          directory is created if its parent exists.
// PNG files are 8-bit RGB written with libpng; fps does not apply to them.
// A .png or dir/ write replaces the previous output at that path: numbered frames left
// over from a longer sequence, and the other form (out.png vs out_NNNNN.png), are removed.
//
// Outputs follow io/output_file.h: a folder, device or socket where a file goes is refused, a
// symbolic link is followed, a pipe is written through. A "dir/" folder is replaced as a
// whole (so two runs never mix frames), and only when it holds nothing but frames.
// Nothing half-written is ever visible: the encoder writes `<path>.tmp-<pid>` (for PNG
// sequences, a temporary directory next to the output) and the result is renamed into
// place only after it finished; on any failure the temporaries are removed and a
// raylight::Error naming `path` is thrown. Invalid input (shape, channels, empty, fps,
// unsupported extension) is an Error too.
#pragma once

#include <string>

#include "core/tensor.h"

namespace raylight {

void write_video(const std::string& path, const Tensor& video, double fps = 16.0);

// The checks write_video makes on `path` (format, output policy of io/output_file.h, a frame
// folder's contents) without writing: commands call it before long work.
void check_video_output(const std::string& path);

}  // namespace raylight
