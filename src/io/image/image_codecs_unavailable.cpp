// Stand-ins for the optional picture encoders in builds without them: WebP without
// -DRAYLIGHT_VIDEO_IO (libwebp), JPEG without -DRAYLIGHT_JPEG (libjpeg). image_format_of
// already refuses their extensions; these only say so if reached another way. CMake
// compiles only the halves this build lacks (RAYLIGHT_NO_WEBP, RAYLIGHT_NO_JPEG).
#include "core/error.h"
#include "io/image/image_codecs.h"

namespace raylight::image {

#ifdef RAYLIGHT_NO_WEBP
bool have_webp() { return false; }
void encode_webp(const uint8_t*, int64_t, int64_t, const std::string&) {
  fail("WebP output is not in this build (configured with -DRAYLIGHT_VIDEO_IO=OFF)");
}
DecodedRgb decode_webp(const std::vector<uint8_t>&, int64_t) {
  fail("WebP pictures are not read by this build (configured with -DRAYLIGHT_VIDEO_IO=OFF)");
}
#endif

#ifdef RAYLIGHT_NO_JPEG
bool have_jpeg() { return false; }
void encode_jpeg(const uint8_t*, int64_t, int64_t, const std::string&) {
  fail("JPEG output is not in this build (rebuild with -DRAYLIGHT_JPEG=ON)");
}
DecodedRgb decode_jpeg(const std::vector<uint8_t>&, int64_t) {
  fail("JPEG pictures are not read by this build (rebuild with -DRAYLIGHT_JPEG=ON)");
}
#endif

}  // namespace raylight::image
