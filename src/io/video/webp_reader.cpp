// Decoding an animated (or still) WebP back to RGB frames. WebPAnimDecoder lives in
// libwebpdemux, which the build does not link, so this demuxes with libwebpmux
// (WebPMuxGetFrame), decodes each frame with libwebp (WebPDecodeRGBA) and composites it
// onto the canvas as the WebP container spec says: the canvas starts transparent, a frame
// with "dispose to background" clears its rectangle before the next frame, and a frame
// with "blend" is alpha-composited over the canvas (otherwise it replaces its rectangle).
// The RGB of the canvas after each frame is that frame (our files are fully opaque).
#include <webp/decode.h>
#include <webp/mux.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "io/video/codecs.h"

namespace raylight::video {
namespace {

struct MuxHolder {
  WebPMux* mux = nullptr;
  WebPMuxFrameInfo frame;
  uint8_t* pixels = nullptr;
  MuxHolder() { std::memset(&frame, 0, sizeof frame); }
  ~MuxHolder() {
    WebPFree(pixels);
    WebPDataClear(&frame.bitstream);
    WebPMuxDelete(mux);
  }
};

// src over dst for non-premultiplied RGBA (the WebP spec's blending formula).
void blend_pixel(const uint8_t* src, uint8_t* dst) {
  const int sa = src[3];
  if (sa == 255) {
    std::memcpy(dst, src, 4);
    return;
  }
  const int da = dst[3] * (255 - sa) / 255;
  const int a = sa + da;
  for (int c = 0; c < 3; ++c)
    dst[c] = a == 0 ? 0 : static_cast<uint8_t>((src[c] * sa + dst[c] * da + a / 2) / a);
  dst[3] = static_cast<uint8_t>(a);
}

}  // namespace

DecodedVideo decode_webp(const std::string& path, bool want_pixels) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open ", path);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
  if (in.bad()) fail("cannot read ", path);

  MuxHolder h;
  const WebPData data = {bytes.data(), bytes.size()};
  h.mux = WebPMuxCreate(&data, 0);
  if (!h.mux) fail("not a valid WebP file");
  int cw = 0, ch = 0;
  if (WebPMuxGetCanvasSize(h.mux, &cw, &ch) != WEBP_MUX_OK) fail("invalid WebP canvas size");
  WebPMuxAnimParams anim;
  const bool animated = WebPMuxGetAnimationParams(h.mux, &anim) == WEBP_MUX_OK;
  int count = 1;
  if (animated && (WebPMuxNumChunks(h.mux, WEBP_CHUNK_ANMF, &count) != WEBP_MUX_OK || count < 1))
    fail("animated WebP without frames");

  DecodedVideo d;
  d.info.width = cw;
  d.info.height = ch;
  d.info.loop_count = animated ? anim.loop_count : -1;
  if (want_pixels) {
    d.rgb.width = cw;
    d.rgb.height = ch;
  }
  std::vector<uint8_t> canvas(static_cast<size_t>(cw) * ch * 4, 0);
  bool clear_previous = false;
  int px = 0, py = 0, pw = 0, ph = 0;  // previous frame's rectangle
  int64_t t_ms = 0;
  for (int i = 1; i <= count; ++i) {
    if (WebPMuxGetFrame(h.mux, static_cast<uint32_t>(i), &h.frame) != WEBP_MUX_OK)
      fail("cannot read frame ", i - 1);
    int fw = 0, fh = 0;
    h.pixels = WebPDecodeRGBA(h.frame.bitstream.bytes, h.frame.bitstream.size, &fw, &fh);
    if (!h.pixels) fail("cannot decode frame ", i - 1);
    const int x0 = h.frame.x_offset, y0 = h.frame.y_offset;
    if (x0 < 0 || y0 < 0 || x0 + fw > cw || y0 + fh > ch)
      fail("frame ", i - 1, " (", fw, "x", fh, " at ", x0, ",", y0, ") lies outside the ", cw, "x",
           ch, " canvas");
    if (clear_previous)
      for (int y = py; y < py + ph; ++y)
        std::memset(&canvas[(static_cast<size_t>(y) * cw + px) * 4], 0,
                    static_cast<size_t>(pw) * 4);
    const bool blend = animated && h.frame.blend_method == WEBP_MUX_BLEND;
    for (int y = 0; y < fh; ++y) {
      const uint8_t* src = h.pixels + static_cast<size_t>(y) * fw * 4;
      uint8_t* dst = &canvas[(static_cast<size_t>(y0 + y) * cw + x0) * 4];
      if (!blend) {
        std::memcpy(dst, src, static_cast<size_t>(fw) * 4);
      } else {
        for (int x = 0; x < fw; ++x) blend_pixel(src + x * 4, dst + x * 4);
      }
    }
    clear_previous = animated && h.frame.dispose_method == WEBP_MUX_DISPOSE_BACKGROUND;
    px = x0, py = y0, pw = fw, ph = fh;

    d.info.timestamps_s.push_back(static_cast<double>(t_ms) / 1000.0);
    t_ms += animated ? h.frame.duration : 0;
    ++d.info.frames;
    if (want_pixels) {
      d.rgb.frames = d.info.frames;
      d.rgb.pixels.resize(d.rgb.pixels.size() + d.rgb.frame_bytes());
      uint8_t* out = d.rgb.frame(d.rgb.frames - 1);
      for (size_t p = 0; p < static_cast<size_t>(cw) * ch; ++p)
        std::memcpy(out + p * 3, &canvas[p * 4], 3);
    }
    WebPFree(h.pixels);
    h.pixels = nullptr;
    WebPDataClear(&h.frame.bitstream);
  }
  d.info.duration_s = static_cast<double>(t_ms) / 1000.0;
  return d;
}

}  // namespace raylight::video
