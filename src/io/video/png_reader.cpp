// Reading PNG outputs back (single file, numbered sequence or directory) with libpng's
// simplified API, which reports errors through the image struct instead of longjmp.
#include <png.h>

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "io/video/codecs.h"
#include "io/video/png_naming.h"

namespace raylight::video {
namespace {

bool is_regular(const std::string& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec);
}

// Decodes one PNG as 8-bit RGB into `out` (resized), returning its size.
void decode_png(const std::string& file, std::vector<uint8_t>* out, int64_t* width,
                int64_t* height) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, file.c_str())) {
    const std::string message = image.message;
    png_image_free(&image);
    fail("libpng cannot read ", file, ": ", message);
  }
  image.format = PNG_FORMAT_RGB;
  *width = image.width;
  *height = image.height;
  out->resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, out->data(), 0, nullptr)) {
    const std::string message = image.message;
    png_image_free(&image);
    fail("libpng cannot decode ", file, ": ", message);
  }
  png_image_free(&image);
}

}  // namespace

DecodedVideo decode_png_output(const std::string& path, bool want_pixels) {
  const PngNaming n = png_naming(path);
  std::vector<std::string> files;
  for (int64_t i = 0; is_regular(n.numbered(i)); ++i) files.push_back(n.numbered(i));
  if (!n.directory && is_regular(n.single)) {
    if (!files.empty()) fail("both ", n.single, " and ", files[0], " exist: ambiguous PNG output");
    files.push_back(n.single);
  }
  if (files.empty())
    fail("no PNG frames found (looked for ", n.directory ? "" : n.single + " and ", n.numbered(0),
         ")");

  DecodedVideo d;
  d.info.frames = static_cast<int64_t>(files.size());
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < files.size(); ++i) {
    int64_t w = 0, h = 0;
    decode_png(files[i], &buf, &w, &h);
    if (i == 0) {
      d.info.width = w;
      d.info.height = h;
      if (want_pixels) {
        d.rgb.frames = d.info.frames;
        d.rgb.width = w;
        d.rgb.height = h;
        d.rgb.pixels.resize(files.size() * d.rgb.frame_bytes());
      }
    } else if (w != d.info.width || h != d.info.height) {
      fail(files[i], " is ", w, "x", h, " but ", files[0], " is ", d.info.width, "x",
           d.info.height);
    }
    if (want_pixels) std::memcpy(d.rgb.frame(static_cast<int64_t>(i)), buf.data(), buf.size());
  }
  return d;
}

}  // namespace raylight::video
