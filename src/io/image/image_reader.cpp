#include "io/image/image_reader.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <filesystem>

#include "core/error.h"
#include "io/image/image_codecs.h"

namespace raylight {
namespace {

bool starts_with(const std::vector<uint8_t>& b, const char* magic, size_t at = 0) {
  const size_t n = std::strlen(magic);
  return b.size() >= at + n && std::memcmp(b.data() + at, magic, n) == 0;
}

}  // namespace

RgbPicture decode_picture(const std::vector<uint8_t>& bytes, const std::string& what) {
  image::DecodedRgb d;
  try {
    if (bytes.empty()) fail("the file is empty");
    if (starts_with(bytes, "\x89PNG\r\n\x1a\n")) d = image::decode_png(bytes, kMaxImageSide);
    else if (starts_with(bytes, "RIFF") && starts_with(bytes, "WEBP", 8)) d = image::decode_webp(bytes, kMaxImageSide);
    else if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
      d = image::decode_jpeg(bytes, kMaxImageSide);
    else fail("not a PNG, WebP or JPEG picture");
  } catch (const Error& e) {
    fail("image ", what, ": ", e.what());
  }
  RgbPicture p;
  p.width = d.width;
  p.height = d.height;
  p.rgb = std::move(d.rgb);
  return p;
}

Tensor picture_tensor(const RgbPicture& p) {
  Tensor out = Tensor::empty({3, p.height, p.width});
  float* o = out.f32();
  const int64_t plane = p.height * p.width;
  for (int64_t i = 0; i < plane; ++i)
    for (int64_t c = 0; c < 3; ++c) o[c * plane + i] = static_cast<float>(p.rgb[i * 3 + c] / 127.5 - 1.0);
  return out;
}

Tensor decode_image(const std::vector<uint8_t>& bytes, const std::string& what) {
  return picture_tensor(decode_picture(bytes, what));
}

Tensor read_image(const std::string& path) { return picture_tensor(read_picture(path)); }

RgbPicture read_picture(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p(path);
  if (!fs::exists(p, ec)) fail("image ", path, " does not exist");
  if (!fs::is_regular_file(p, ec)) fail("image ", path, " is not a regular file");
  const auto size = fs::file_size(p, ec);
  if (ec) fail("image ", path, ": ", ec.message());
  if (size > static_cast<uintmax_t>(kMaxImageFileBytes))
    fail("image ", path, " is ", size, " bytes; pictures of up to ", kMaxImageFileBytes, " bytes are read");
  std::ifstream in(p, std::ios::binary);
  if (!in) fail("cannot open image ", path, ": ", std::strerror(errno));
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (in.gcount() != static_cast<std::streamsize>(bytes.size())) fail("cannot read image ", path, " whole");
  return decode_picture(bytes, path);
}

}  // namespace raylight
