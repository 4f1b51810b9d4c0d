// Still WebP pictures through libwebp's simple API: lossy, quality 90 (as the animated
// WebP videos), the bytes written in one go.
#include <fcntl.h>
#include <unistd.h>
#include <webp/decode.h>
#include <webp/encode.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "io/image/image_codecs.h"

namespace raylight::image {

bool have_webp() { return true; }

void encode_webp(const uint8_t* rgb, int64_t width, int64_t height, const std::string& file) {
  if (width < 1 || height < 1 || width > WEBP_MAX_DIMENSION || height > WEBP_MAX_DIMENSION)
    fail("WebP pictures are 1 to ", WEBP_MAX_DIMENSION, " pixels per side, got ", width, "x", height);
  uint8_t* out = nullptr;
  const size_t n = WebPEncodeRGB(rgb, static_cast<int>(width), static_cast<int>(height), static_cast<int>(width * 3),
                                 90.0f, &out);
  if (n == 0 || !out) {
    WebPFree(out);
    fail("libwebp could not encode a ", width, "x", height, " picture");
  }
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  std::string error = fd < 0 ? std::strerror(errno) : "";
  for (size_t done = 0; fd >= 0 && error.empty() && done < n;) {
    const ssize_t w = ::write(fd, out + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) error = std::strerror(errno);
    else done += static_cast<size_t>(w);
  }
  if (fd >= 0 && ::close(fd) != 0 && error.empty()) error = std::strerror(errno);
  WebPFree(out);
  if (!error.empty()) fail("cannot write ", file, ": ", error);
}

DecodedRgb decode_webp(const std::vector<uint8_t>& bytes, int64_t max_side) {
  int w = 0, h = 0;
  if (!WebPGetInfo(bytes.data(), bytes.size(), &w, &h)) fail("not a readable WebP picture");
  if (w < 1 || h < 1 || w > max_side || h > max_side)
    fail("the WebP picture is ", w, "x", h, " pixels; sides of 1 to ", max_side, " are read");
  DecodedRgb out;
  out.width = w;
  out.height = h;
  out.rgb.resize(static_cast<size_t>(w) * h * 3);
  if (!WebPDecodeRGBInto(bytes.data(), bytes.size(), out.rgb.data(), out.rgb.size(), w * 3))
    fail("the WebP picture cannot be decoded (an animated WebP is not a picture)");
  return out;
}

}  // namespace raylight::image
