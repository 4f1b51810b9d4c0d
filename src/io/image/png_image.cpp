// PNG pictures through libpng's simplified API (8-bit RGB).
#include <png.h>

#include "core/error.h"
#include "io/image/image_codecs.h"

namespace raylight::image {

void encode_png(const uint8_t* rgb, int64_t width, int64_t height, const std::string& file) {
  if (width < 1 || height < 1 || width > PNG_UINT_31_MAX / 3 || height > PNG_UINT_31_MAX)
    fail("a PNG picture of ", width, "x", height, " pixels cannot be written");
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = PNG_FORMAT_RGB;
  const int ok = png_image_write_to_file(&image, file.c_str(), 0, rgb, static_cast<png_int_32>(width * 3), nullptr);
  const std::string message = image.message;
  png_image_free(&image);
  if (!ok) fail("libpng could not write ", file, ": ", message);
}

}  // namespace raylight::image
