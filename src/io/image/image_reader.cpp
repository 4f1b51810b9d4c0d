#include "io/image/image_reader.h"

#include <png.h>
#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <iterator>

#ifndef RAYLIGHT_NO_WEBP
#include <webp/decode.h>
#endif

#include "core/error.h"

namespace raylight {
namespace {

void check_size(const std::string& path, int64_t width, int64_t height) {
  if (width < 1 || height < 1 || width > kMaxPictureSide || height > kMaxPictureSide ||
      width * height > kMaxPicturePixels)
    fail("picture ", path, " is ", width, "x", height, "; pictures are read up to ", kMaxPictureSide,
         " pixels per side and ", kMaxPicturePixels, " pixels in all");
}

RgbPicture decode_png(const std::string& path, const std::vector<uint8_t>& bytes) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) {
    const std::string message = image.message;
    png_image_free(&image);
    fail("picture ", path, " is not a PNG libpng can read: ", message);
  }
  RgbPicture p;
  p.width = image.width;
  p.height = image.height;
  try {
    check_size(path, p.width, p.height);
  } catch (...) {
    png_image_free(&image);
    throw;
  }
  // RGBA, then the alpha dropped (not composited: PIL's convert("RGB"), which ComfyUI's
  // LoadImage uses); grey is expanded.
  image.format = PNG_FORMAT_RGBA;
  std::vector<uint8_t> rgba(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, rgba.data(), 0, nullptr)) {
    const std::string message = image.message;
    png_image_free(&image);
    fail("picture ", path, " is a broken PNG: ", message);
  }
  png_image_free(&image);
  p.rgb.resize(static_cast<size_t>(p.width * p.height * 3));
  for (size_t i = 0, n = static_cast<size_t>(p.width * p.height); i < n; ++i)
    std::memcpy(&p.rgb[i * 3], &rgba[i * 4], 3);
  return p;
}

RgbPicture decode_webp(const std::string& path, const std::vector<uint8_t>& bytes) {
#ifdef RAYLIGHT_NO_WEBP
  (void)bytes;
  fail("picture ", path, " is a WebP, which this build does not read (configured with -DRAYLIGHT_VIDEO_IO=OFF)");
#else
  int width = 0, height = 0;
  if (!WebPGetInfo(bytes.data(), bytes.size(), &width, &height)) fail("picture ", path, " is not a WebP libwebp can read");
  RgbPicture p;
  p.width = width;
  p.height = height;
  check_size(path, p.width, p.height);
  p.rgb.resize(static_cast<size_t>(p.width * p.height * 3));
  if (!WebPDecodeRGBInto(bytes.data(), bytes.size(), p.rgb.data(), p.rgb.size(), width * 3))
    fail("picture ", path, " is a broken WebP");
  return p;
#endif
}

}  // namespace

RgbPicture read_picture(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail("picture ", path, " does not exist");
  if (!S_ISREG(st.st_mode)) fail("picture ", path, " is not a regular file");
  // A compressed picture within the pixel limit is far below this.
  if (st.st_size > (int64_t{1} << 30)) fail("picture ", path, " is ", st.st_size, " bytes; pictures are read up to 1 GiB");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open picture ", path);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), "\x89PNG\r\n\x1a\n", 8) == 0) return decode_png(path, bytes);
  if (bytes.size() >= 12 && std::memcmp(bytes.data(), "RIFF", 4) == 0 && std::memcmp(bytes.data() + 8, "WEBP", 4) == 0)
    return decode_webp(path, bytes);
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
    fail("picture ", path, " is a JPEG; pictures are read as PNG or WebP (convert it first)");
  fail("picture ", path, " is neither a PNG nor a WebP");
}

Tensor picture_tensor(const RgbPicture& p) {
  Tensor t = Tensor::empty({3, p.height, p.width});
  float* o = t.f32();
  const int64_t n = p.width * p.height;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < 3; ++c) o[c * n + i] = static_cast<float>(p.rgb[static_cast<size_t>(i * 3 + c)] / 127.5 - 1.0);
  return t;
}

}  // namespace raylight
