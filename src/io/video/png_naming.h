// File names of PNG outputs, shared by the PNG writer and reader so both agree:
//   "out.png"  one frame: out.png; several: out_00000.png, out_00001.png, ...
//   "dir/"     dir/frame_00000.png, dir/frame_00001.png, ... (any frame count)
#pragma once

#include <cstdint>
#include <string>

namespace raylight::video {

struct PngNaming {
  bool directory = false;  // the "dir/" form
  std::string dir;         // directory form: the directory, without the trailing '/'
  std::string single;      // file form: the path itself (used when there is one frame)
  std::string prefix;      // "out_" or "dir/frame_"
  std::string suffix;      // ".png" as spelled in the path (".png" for the directory form)

  // prefix + 5-digit zero-padded index + suffix.
  std::string numbered(int64_t index) const;
};

// Error when the path is neither "*.png" nor "dir/".
PngNaming png_naming(const std::string& path);

}  // namespace raylight::video
