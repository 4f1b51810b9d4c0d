// Decoding an MP4 back to RGB frames with libavformat/libavcodec: every packet of the
// best video stream is decoded and every frame counted, so the frame count is what a
// player would show, not what the container claims. Frames are converted to RGB24 with
// the colour matrix and range the stream is tagged with.
#include <cstring>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
}

#include "core/error.h"
#include "io/video/codecs.h"
#include "io/video/ffmpeg_util.h"

namespace raylight::video {
namespace {

struct Mp4Decoder {
  AVFormatContext* ic = nullptr;
  AVCodecContext* dec = nullptr;
  SwsContext* sws = nullptr;
  AVFrame* frame = nullptr;
  AVPacket* pkt = nullptr;
  ~Mp4Decoder() {
    av_packet_free(&pkt);
    av_frame_free(&frame);
    sws_freeContext(sws);
    avcodec_free_context(&dec);
    avformat_close_input(&ic);
  }
};

}  // namespace

DecodedVideo decode_mp4(const std::string& path, bool want_pixels) {
  quiet_ffmpeg_logs();
  Mp4Decoder m;
  int r = avformat_open_input(&m.ic, path.c_str(), nullptr, nullptr);
  if (r < 0) fail("cannot open ", path, ": ", av_error_text(r));
  r = avformat_find_stream_info(m.ic, nullptr);
  if (r < 0) fail("cannot read stream info: ", av_error_text(r));
  const AVCodec* codec = nullptr;
  const int s = av_find_best_stream(m.ic, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
  if (s < 0 || !codec) fail("no decodable video stream: ", av_error_text(s));
  const AVStream* st = m.ic->streams[s];
  m.dec = avcodec_alloc_context3(codec);
  m.frame = av_frame_alloc();
  m.pkt = av_packet_alloc();
  if (!m.dec || !m.frame || !m.pkt) fail("out of memory setting up the decoder");
  r = avcodec_parameters_to_context(m.dec, st->codecpar);
  if (r < 0) fail("cannot configure the decoder: ", av_error_text(r));
  r = avcodec_open2(m.dec, codec, nullptr);
  if (r < 0) fail("cannot open the ", codec->name, " decoder: ", av_error_text(r));

  DecodedVideo d;
  const double tb = av_q2d(st->time_base);
  auto take = [&](const AVFrame* f) {
    if (d.info.frames == 0) {
      d.info.width = f->width;
      d.info.height = f->height;
      d.rgb.width = f->width;
      d.rgb.height = f->height;
    } else if (f->width != d.info.width || f->height != d.info.height) {
      fail("frame ", d.info.frames, " is ", f->width, "x", f->height, " but frame 0 is ",
           d.info.width, "x", d.info.height);
    }
    const int64_t ts = f->best_effort_timestamp;
    if (ts == AV_NOPTS_VALUE) fail("frame ", d.info.frames, " has no timestamp");
    d.info.timestamps_s.push_back(static_cast<double>(ts) * tb);
    d.info.duration_s = static_cast<double>(ts + f->pkt_duration) * tb;
    ++d.info.frames;
    if (!want_pixels) return;
    m.sws = sws_getCachedContext(m.sws, f->width, f->height, static_cast<AVPixelFormat>(f->format),
                                 f->width, f->height, AV_PIX_FMT_RGB24,
                                 SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr,
                                 nullptr, nullptr);
    if (!m.sws) fail("cannot convert decoded frames to RGB");
    const int* coeffs = sws_getCoefficients(f->colorspace);
    sws_setColorspaceDetails(m.sws, coeffs, f->color_range == AVCOL_RANGE_JPEG, coeffs, 1, 0,
                             1 << 16, 1 << 16);
    d.rgb.pixels.resize(d.rgb.pixels.size() + d.rgb.frame_bytes());
    d.rgb.frames = d.info.frames;
    uint8_t* dst[1] = {d.rgb.frame(d.rgb.frames - 1)};
    const int strides[1] = {static_cast<int>(f->width * 3)};
    sws_scale(m.sws, f->data, f->linesize, 0, f->height, dst, strides);
  };
  auto drain = [&]() {
    while ((r = avcodec_receive_frame(m.dec, m.frame)) == 0) {
      take(m.frame);
      av_frame_unref(m.frame);
    }
    if (r != AVERROR(EAGAIN) && r != AVERROR_EOF) fail("decoding failed: ", av_error_text(r));
  };
  while ((r = av_read_frame(m.ic, m.pkt)) >= 0) {
    if (m.pkt->stream_index == s) {
      const int sr = avcodec_send_packet(m.dec, m.pkt);
      av_packet_unref(m.pkt);
      if (sr < 0) fail("decoding failed: ", av_error_text(sr));
      drain();
    } else {
      av_packet_unref(m.pkt);
    }
  }
  if (r != AVERROR_EOF) fail("cannot read packets: ", av_error_text(r));
  avcodec_send_packet(m.dec, nullptr);
  drain();
  if (d.info.frames == 0) fail("the video stream has no frames");
  return d;
}

}  // namespace raylight::video
