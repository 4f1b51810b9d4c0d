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

namespace raylight::image {

// RGBA then alpha dropped: PNG_FORMAT_RGB would composite onto a background, PIL's
// convert("RGB") (what the reference code reads pictures with) keeps the colour values.
DecodedRgb decode_png(const std::vector<uint8_t>& bytes, int64_t max_side) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) {
    const std::string message = image.message;
    png_image_free(&image);
    fail("not a readable PNG: ", message);
  }
  if (image.width < 1 || image.height < 1 || image.width > max_side || image.height > max_side) {
    png_image_free(&image);
    fail("the PNG is ", image.width, "x", image.height, " pixels; sides of 1 to ", max_side, " are read");
  }
  image.format = PNG_FORMAT_RGBA;
  std::vector<uint8_t> rgba(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, rgba.data(), 0, nullptr)) {
    const std::string message = image.message;
    png_image_free(&image);
    fail("the PNG cannot be decoded: ", message);
  }
  DecodedRgb out;
  out.width = image.width;
  out.height = image.height;
  png_image_free(&image);
  out.rgb.resize(static_cast<size_t>(out.width * out.height * 3));
  for (size_t i = 0, n = static_cast<size_t>(out.width * out.height); i < n; ++i)
    for (int c = 0; c < 3; ++c) out.rgb[i * 3 + c] = rgba[i * 4 + c];
  return out;
}

}  // namespace raylight::image
