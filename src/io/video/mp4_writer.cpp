// H.264 in MP4: libx264 through libavcodec, muxed by libavformat.
//
// Frames go RGB24 -> yuv420p with swscale using BT.709 coefficients and limited range,
// and the stream is tagged that way so players convert back with the same matrix.
// Timing: the encoder time base is 1/fps (as an exact rational when fps is one, e.g.
// 30000/1001), frame i has pts i and every packet lasts one tick, so frame i is shown at
// i / fps and the file lasts F / fps. Odd sizes are padded to even (4:2:0 needs it) by
// repeating the last column/row. All FFmpeg objects live in one RAII holder so every
// error path frees them and closes the output before the caller removes it.
#include <algorithm>
#include <cstring>
#include <vector>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include "core/error.h"
#include "io/video/codecs.h"
#include "io/video/ffmpeg_util.h"

namespace raylight::video {
namespace {

constexpr const char* kCrf = "18";         // visually near-lossless for generated video
constexpr const char* kPreset = "medium";  // x264's default speed/size trade-off

struct Mp4Encoder {
  AVFormatContext* oc = nullptr;
  AVCodecContext* enc = nullptr;
  AVStream* st = nullptr;
  SwsContext* sws = nullptr;
  AVFrame* frame = nullptr;
  AVPacket* pkt = nullptr;
  AVDictionary* opts = nullptr;

  ~Mp4Encoder() {
    av_dict_free(&opts);
    av_packet_free(&pkt);
    av_frame_free(&frame);
    sws_freeContext(sws);
    avcodec_free_context(&enc);
    if (oc) {
      if (oc->pb) avio_closep(&oc->pb);
      avformat_free_context(oc);
    }
  }

  // Sends `f` (nullptr flushes) and writes every packet the encoder has ready.
  void send(const AVFrame* f) {
    int r = avcodec_send_frame(enc, f);
    if (r < 0) fail("H.264 encoder rejected a frame: ", av_error_text(r));
    while ((r = avcodec_receive_packet(enc, pkt)) == 0) {
      if (pkt->duration == 0) pkt->duration = 1;  // one tick of 1/fps
      av_packet_rescale_ts(pkt, enc->time_base, st->time_base);
      pkt->stream_index = st->index;
      r = av_interleaved_write_frame(oc, pkt);  // takes the packet's data
      if (r < 0) fail("cannot write an H.264 packet: ", av_error_text(r));
    }
    if (r != AVERROR(EAGAIN) && r != AVERROR_EOF) fail("H.264 encoder failed: ", av_error_text(r));
  }
};

// The frame padded to even width/height by repeating the last column and row.
void pad_frame(const uint8_t* src, int64_t w, int64_t h, int64_t pw, int64_t ph, uint8_t* dst) {
  for (int64_t y = 0; y < ph; ++y) {
    const uint8_t* row = src + std::min(y, h - 1) * w * 3;
    uint8_t* out = dst + y * pw * 3;
    std::memcpy(out, row, static_cast<size_t>(w * 3));
    if (pw > w) std::memcpy(out + w * 3, row + (w - 1) * 3, 3);
  }
}

}  // namespace

void encode_mp4(const RgbFrames& rgb, double fps, const std::string& file) {
  quiet_ffmpeg_logs();
  const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
  if (!codec)
    fail("this FFmpeg build (", LIBAVCODEC_IDENT,
         ") has no libx264 encoder, which H.264 MP4 output needs; write .webp or .png instead");
  const int64_t pw = rgb.width + (rgb.width & 1), ph = rgb.height + (rgb.height & 1);

  Mp4Encoder m;
  int r = avformat_alloc_output_context2(&m.oc, nullptr, "mp4", file.c_str());
  if (r < 0 || !m.oc) fail("cannot set up the MP4 muxer: ", av_error_text(r));
  m.st = avformat_new_stream(m.oc, nullptr);
  m.enc = avcodec_alloc_context3(codec);
  m.pkt = av_packet_alloc();
  m.frame = av_frame_alloc();
  if (!m.st || !m.enc || !m.pkt || !m.frame) fail("out of memory setting up the H.264 encoder");

  const AVRational rate = av_d2q(fps, 1 << 16);
  m.enc->width = static_cast<int>(pw);
  m.enc->height = static_cast<int>(ph);
  m.enc->pix_fmt = AV_PIX_FMT_YUV420P;
  m.enc->time_base = av_inv_q(rate);
  m.enc->framerate = rate;
  m.enc->sample_aspect_ratio = AVRational{1, 1};
  m.enc->color_range = AVCOL_RANGE_MPEG;
  m.enc->colorspace = AVCOL_SPC_BT709;
  m.enc->color_primaries = AVCOL_PRI_BT709;
  m.enc->color_trc = AVCOL_TRC_BT709;
  if (m.oc->oformat->flags & AVFMT_GLOBALHEADER) m.enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  av_dict_set(&m.opts, "crf", kCrf, 0);
  av_dict_set(&m.opts, "preset", kPreset, 0);
  r = avcodec_open2(m.enc, codec, &m.opts);
  if (r < 0) fail("cannot open libx264 for ", pw, "x", ph, " at ", fps, " fps: ", av_error_text(r));
  if (av_dict_count(m.opts) != 0) fail("libx264 did not accept its crf/preset options");
  av_dict_free(&m.opts);

  r = avcodec_parameters_from_context(m.st->codecpar, m.enc);
  if (r < 0) fail("cannot configure the MP4 stream: ", av_error_text(r));
  m.st->time_base = m.enc->time_base;  // a hint; the muxer may pick a finer one
  m.st->avg_frame_rate = rate;

  r = avio_open(&m.oc->pb, file.c_str(), AVIO_FLAG_WRITE);
  if (r < 0) fail("cannot create ", file, ": ", av_error_text(r));
  av_dict_set(&m.opts, "movflags", "+faststart", 0);  // index up front, for streaming
  r = avformat_write_header(m.oc, &m.opts);
  if (r < 0) fail("cannot write the MP4 header: ", av_error_text(r));

  m.sws = sws_getContext(static_cast<int>(pw), static_cast<int>(ph), AV_PIX_FMT_RGB24,
                         static_cast<int>(pw), static_cast<int>(ph), AV_PIX_FMT_YUV420P,
                         SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, nullptr, nullptr,
                         nullptr);
  if (!m.sws) fail("cannot set up the RGB to YUV conversion");
  const int* bt709 = sws_getCoefficients(SWS_CS_ITU709);
  sws_setColorspaceDetails(m.sws, bt709, 1, bt709, 0, 0, 1 << 16, 1 << 16);

  m.frame->format = AV_PIX_FMT_YUV420P;
  m.frame->width = static_cast<int>(pw);
  m.frame->height = static_cast<int>(ph);
  r = av_frame_get_buffer(m.frame, 0);
  if (r < 0) fail("cannot allocate a video frame: ", av_error_text(r));

  std::vector<uint8_t> padded;
  if (pw != rgb.width || ph != rgb.height) padded.resize(static_cast<size_t>(pw * ph * 3));
  for (int64_t f = 0; f < rgb.frames; ++f) {
    const uint8_t* src = rgb.frame(f);
    if (!padded.empty()) {
      pad_frame(src, rgb.width, rgb.height, pw, ph, padded.data());
      src = padded.data();
    }
    r = av_frame_make_writable(m.frame);
    if (r < 0) fail("cannot reuse the video frame: ", av_error_text(r));
    const uint8_t* planes[1] = {src};
    const int strides[1] = {static_cast<int>(pw * 3)};
    sws_scale(m.sws, planes, strides, 0, static_cast<int>(ph), m.frame->data, m.frame->linesize);
    m.frame->pts = f;
    m.send(m.frame);
  }
  m.send(nullptr);
  r = av_write_trailer(m.oc);
  if (r < 0) fail("cannot finish the MP4 file: ", av_error_text(r));
  r = avio_closep(&m.oc->pb);
  if (r < 0) fail("cannot close ", file, ": ", av_error_text(r));
}

}  // namespace raylight::video
