#include "io/image/image_reader.h"

#include <png.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "core/error.h"

namespace raylight {

Tensor read_image(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) fail("image ", path, " is not a regular file (or does not exist)");
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path.c_str()))
    fail("image ", path, " is not a PNG this build reads: ", img.message);
  if (img.width < 1 || img.height < 1 || img.width > kMaxImageSide || img.height > kMaxImageSide) {
    png_image_free(&img);
    fail("image ", path, " is ", img.width, "x", img.height, ": sides must be 1 to ", kMaxImageSide, " pixels");
  }
  img.format = PNG_FORMAT_RGB;  // alpha dropped, grey expanded
  const int64_t w = img.width, h = img.height;
  std::vector<uint8_t> rgb(static_cast<size_t>(w * h * 3));
  if (!png_image_finish_read(&img, nullptr, rgb.data(), 0, nullptr)) {
    const std::string why = img.message;
    png_image_free(&img);
    fail("image ", path, " cannot be decoded: ", why);
  }
  Tensor out = Tensor::empty({3, h, w});
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < w * h; ++i) out.f32()[c * w * h + i] = rgb[static_cast<size_t>(i * 3 + c)] / 127.5f - 1.0f;
  return out;
}

}  // namespace raylight
