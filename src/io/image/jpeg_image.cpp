// JPEG pictures through libjpeg (libjpeg-turbo on Debian): baseline, quality 95, 4:2:0.
// libjpeg reports errors by calling error_exit, which must not return: here it records the
// message and longjmps back to encode_jpeg (the documented libjpeg pattern), which releases
// the compressor and the file and throws. No C++ object lives between setjmp and longjmp.
#include <csetjmp>
#include <cstdio>
// jpeglib.h needs size_t and FILE first.
#include <jpeglib.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "io/image/image_codecs.h"

namespace raylight::image {
namespace {

struct ErrorManager {
  jpeg_error_mgr mgr;  // first: libjpeg sees a jpeg_error_mgr*
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void error_exit(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

// The compression itself; false (with err->message) when libjpeg failed.
bool compress(jpeg_compress_struct* cinfo, ErrorManager* err, FILE* f, const uint8_t* rgb, int64_t width,
              int64_t height) {
  if (setjmp(err->jump)) return false;
  jpeg_create_compress(cinfo);
  jpeg_stdio_dest(cinfo, f);
  cinfo->image_width = static_cast<JDIMENSION>(width);
  cinfo->image_height = static_cast<JDIMENSION>(height);
  cinfo->input_components = 3;
  cinfo->in_color_space = JCS_RGB;
  jpeg_set_defaults(cinfo);
  jpeg_set_quality(cinfo, 95, TRUE);
  jpeg_start_compress(cinfo, TRUE);
  while (cinfo->next_scanline < cinfo->image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(rgb + static_cast<size_t>(cinfo->next_scanline) * width * 3);
    jpeg_write_scanlines(cinfo, &row, 1);
  }
  jpeg_finish_compress(cinfo);
  return true;
}

}  // namespace

bool have_jpeg() { return true; }

void encode_jpeg(const uint8_t* rgb, int64_t width, int64_t height, const std::string& file) {
  if (width < 1 || height < 1 || width > JPEG_MAX_DIMENSION || height > JPEG_MAX_DIMENSION)
    fail("JPEG pictures are 1 to ", JPEG_MAX_DIMENSION, " pixels per side, got ", width, "x", height);
  FILE* f = std::fopen(file.c_str(), "wbe");
  if (!f) fail("cannot create ", file, ": ", std::strerror(errno));
  jpeg_compress_struct cinfo;
  ErrorManager err;
  std::memset(&cinfo, 0, sizeof cinfo);
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = error_exit;
  const bool ok = compress(&cinfo, &err, f, rgb, width, height);
  jpeg_destroy_compress(&cinfo);
  const bool written = ok && std::fflush(f) == 0 && !std::ferror(f);
  const int e = errno;
  const bool closed = std::fclose(f) == 0;
  if (!ok) fail("libjpeg could not write ", file, ": ", err.message);
  if (!written || !closed) fail("cannot write ", file, ": ", std::strerror(e));
}

namespace {

// The decompression; false (with err->message) when libjpeg failed. `out` is sized before
// the first row, after the size check, so nothing is allocated between setjmp and longjmp.
bool decompress(jpeg_decompress_struct* cinfo, ErrorManager* err, const std::vector<uint8_t>& bytes,
                int64_t max_side, DecodedRgb* out, bool* too_large) {
  if (setjmp(err->jump)) return false;
  jpeg_create_decompress(cinfo);
  jpeg_mem_src(cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(cinfo, TRUE);
  cinfo->out_color_space = JCS_RGB;
  if (cinfo->image_width < 1 || cinfo->image_height < 1 || cinfo->image_width > max_side ||
      cinfo->image_height > max_side) {
    out->width = cinfo->image_width;
    out->height = cinfo->image_height;
    *too_large = true;
    return false;
  }
  jpeg_start_decompress(cinfo);
  out->width = cinfo->output_width;
  out->height = cinfo->output_height;
  out->rgb.resize(static_cast<size_t>(out->width) * out->height * 3);
  while (cinfo->output_scanline < cinfo->output_height) {
    JSAMPROW row = out->rgb.data() + static_cast<size_t>(cinfo->output_scanline) * out->width * 3;
    jpeg_read_scanlines(cinfo, &row, 1);
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

}  // namespace

DecodedRgb decode_jpeg(const std::vector<uint8_t>& bytes, int64_t max_side) {
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  std::memset(&cinfo, 0, sizeof cinfo);
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = error_exit;
  DecodedRgb out;
  bool too_large = false;
  const bool ok = decompress(&cinfo, &err, bytes, max_side, &out, &too_large);
  jpeg_destroy_decompress(&cinfo);
  if (too_large) fail("the JPEG is ", out.width, "x", out.height, " pixels; sides of 1 to ", max_side, " are read");
  if (!ok) fail("not a readable JPEG: ", err.message);
  return out;
}

}  // namespace raylight::image
