// PNG output: one file, a numbered sequence next to the path, or frames in a directory.
// Frames are encoded into a temporary directory first; only when every frame is done
// are they renamed into place, then leftovers of an earlier output at the same path
// (a longer sequence, or the other single/sequence form) are removed so that the path
// always describes exactly the frames of the last write.
#include <png.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "io/video/codecs.h"
#include "io/video/png_naming.h"
#include "io/video/staging.h"

namespace raylight::video {
namespace {

namespace fs = std::filesystem;

bool is_regular(const std::string& p) {
  std::error_code ec;
  return fs::is_regular_file(fs::symlink_status(p, ec));
}

// Removes numbered frames from `first` on while they exist (a leftover longer sequence).
void remove_numbered_from(const PngNaming& n, int64_t first) {
  for (int64_t i = first; is_regular(n.numbered(i)); ++i) std::remove(n.numbered(i).c_str());
}

std::string file_name(const std::string& p) { return p.substr(p.rfind('/') + 1); }

}  // namespace

void encode_png(const uint8_t* rgb, int64_t width, int64_t height, const std::string& file) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = PNG_FORMAT_RGB;
  const int ok = png_image_write_to_file(&image, file.c_str(), 0, rgb,
                                         static_cast<png_int_32>(width * 3), nullptr);
  const std::string message = image.message;
  png_image_free(&image);
  if (!ok) fail("libpng cannot write ", file, ": ", message);
}

void write_png_output(const RgbFrames& rgb, const std::string& path) {
  const PngNaming n = png_naming(path);
  if (!n.directory && rgb.frames == 1) {
    write_file_atomically(path, [&](const std::string& tmp) {
      encode_png(rgb.frame(0), rgb.width, rgb.height, tmp);
    });
    remove_numbered_from(n, 0);
    return;
  }

  // Encode every frame into a fresh temporary directory next to the output.
  const std::string target = n.directory ? n.dir : path;
  StagedPath tmp(staging_path(target));
  std::error_code ec;
  fs::remove_all(tmp.path(), ec);  // a leftover of a crashed process with our pid
  if (!fs::create_directory(tmp.path(), ec) || ec)
    fail("cannot create temporary directory ", tmp.path(), ": ",
         ec ? ec.message() : std::string("it already exists"));
  for (int64_t f = 0; f < rgb.frames; ++f) {
    const std::string staged = tmp.path() + "/" + file_name(n.numbered(f));
    encode_png(rgb.frame(f), rgb.width, rgb.height, staged);
    sync_file(staged);
  }

  if (n.directory && !fs::exists(fs::symlink_status(n.dir, ec))) {
    rename_or_fail(tmp.path(), n.dir);  // a new directory appears complete, atomically
    tmp.release();
    sync_dir(parent_dir(n.dir));
    return;
  }
  if (n.directory && !fs::is_directory(n.dir, ec)) fail(n.dir, " exists and is not a directory");
  // Check every target first so that a blocked name fails before anything is replaced.
  for (int64_t f = 0; f < rgb.frames; ++f) {
    const auto st = fs::symlink_status(n.numbered(f), ec);
    if (fs::exists(st) && !fs::is_regular_file(st))
      fail("cannot replace ", n.numbered(f), ": it exists and is not a regular file");
  }
  for (int64_t f = 0; f < rgb.frames; ++f)
    rename_or_fail(tmp.path() + "/" + file_name(n.numbered(f)), n.numbered(f));
  sync_dir(parent_dir(n.numbered(0)));
  remove_numbered_from(n, rgb.frames);
  if (!n.directory && is_regular(n.single)) std::remove(n.single.c_str());
}

}  // namespace raylight::video
