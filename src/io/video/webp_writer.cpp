// Animated WebP through libwebp's WebPAnimEncoder: lossy quality 90, loops forever.
// Frame i starts at round(i * 1000 / fps) ms (rounding each start, not each duration, so
// the durations alternate, e.g. 62/63 ms at 16 fps, and never drift), and the last frame
// ends at round(F * 1000 / fps). The assembled file is written in one go.
#include <fcntl.h>
#include <unistd.h>
#include <webp/encode.h>
#include <webp/mux.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "io/video/codecs.h"

namespace raylight::video {
namespace {

constexpr float kQuality = 90.0f;
constexpr int kMaxFrameMs = (1 << 24) - 1;  // ANMF duration is a 24-bit field

struct WebPWriterState {
  WebPAnimEncoder* enc = nullptr;
  WebPPicture pic;
  WebPData data;
  WebPWriterState() {
    WebPPictureInit(&pic);
    WebPDataInit(&data);
  }
  ~WebPWriterState() {
    WebPDataClear(&data);
    WebPPictureFree(&pic);
    if (enc) WebPAnimEncoderDelete(enc);
  }
};

void write_bytes(const std::string& file, const uint8_t* p, size_t n) {
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create ", file, ": ", std::strerror(errno));
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = errno;
      ::close(fd);
      fail("cannot write ", file, ": ", std::strerror(e));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  if (::close(fd) != 0) fail("cannot close ", file, ": ", std::strerror(errno));
}

}  // namespace

void encode_webp(const RgbFrames& rgb, double fps, const std::string& file) {
  if (rgb.width > WEBP_MAX_DIMENSION || rgb.height > WEBP_MAX_DIMENSION)
    fail("WebP frames are at most ", WEBP_MAX_DIMENSION, " pixels per side, got ", rgb.width, "x",
         rgb.height);
  auto start_ms = [&](int64_t i) { return std::llround(static_cast<double>(i) * 1000.0 / fps); };
  if (start_ms(rgb.frames) > INT_MAX) fail("the animation is too long for WebP at ", fps, " fps");
  if (start_ms(1) > kMaxFrameMs)
    fail("WebP frames last at most ", kMaxFrameMs, " ms; fps ", fps, " is too low");

  WebPWriterState s;
  WebPAnimEncoderOptions options;
  if (!WebPAnimEncoderOptionsInit(&options)) fail("libwebp version mismatch (mux options)");
  options.anim_params.loop_count = 0;  // forever
  s.enc = WebPAnimEncoderNew(static_cast<int>(rgb.width), static_cast<int>(rgb.height), &options);
  if (!s.enc) fail("cannot create the WebP animation encoder");

  WebPConfig config;
  if (!WebPConfigInit(&config)) fail("libwebp version mismatch (config)");
  config.lossless = 0;
  config.quality = kQuality;
  if (!WebPValidateConfig(&config)) fail("invalid WebP encoder configuration");

  s.pic.use_argb = 1;
  s.pic.width = static_cast<int>(rgb.width);
  s.pic.height = static_cast<int>(rgb.height);
  for (int64_t f = 0; f < rgb.frames; ++f) {
    if (!WebPPictureImportRGB(&s.pic, rgb.frame(f), static_cast<int>(rgb.width * 3)))
      fail("out of memory importing frame ", f, " into libwebp");
    if (!WebPAnimEncoderAdd(s.enc, &s.pic, static_cast<int>(start_ms(f)), &config))
      fail("WebP encoding of frame ", f, " failed: ", WebPAnimEncoderGetError(s.enc));
  }
  if (!WebPAnimEncoderAdd(s.enc, nullptr, static_cast<int>(start_ms(rgb.frames)), nullptr))
    fail("WebP encoding failed: ", WebPAnimEncoderGetError(s.enc));
  if (!WebPAnimEncoderAssemble(s.enc, &s.data))
    fail("cannot assemble the WebP animation: ", WebPAnimEncoderGetError(s.enc));
  write_bytes(file, s.data.bytes, s.data.size);
}

}  // namespace raylight::video
