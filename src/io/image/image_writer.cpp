// write_image: validate, pick the format, stage and commit; every failure becomes one
// raylight::Error that names the output path.
#include "io/image/image_writer.h"

#include <cctype>
#include <exception>

#include "core/error.h"
#include "io/image/image_codecs.h"
#include "io/output_file.h"
#include "io/video/rgb_frames.h"

namespace raylight {
namespace image {

ImageFormat image_format_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  const size_t dot = name.rfind('.');
  std::string ext = dot == std::string::npos || dot == 0 ? "" : name.substr(dot);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".png") return ImageFormat::Png;
  if (ext == ".webp" && have_webp()) return ImageFormat::Webp;
  if ((ext == ".jpg" || ext == ".jpeg") && have_jpeg()) return ImageFormat::Jpeg;
  std::string supported = ".png";
  if (have_webp()) supported += ", .webp";
  if (have_jpeg()) supported += ", .jpg/.jpeg";
  std::string missing;
  if (ext == ".webp") missing = " (WebP is not in this build: -DRAYLIGHT_VIDEO_IO=OFF)";
  if (ext == ".jpg" || ext == ".jpeg") missing = " (JPEG is not in this build: rebuild with -DRAYLIGHT_JPEG=ON)";
  fail(ext.empty() ? std::string("no file extension") : "unsupported picture extension '" + ext + "'", missing,
       "; pictures are written as ", supported);
}

}  // namespace image

bool is_image_path(const std::string& path) {
  try {
    image::image_format_of(path);
    return true;
  } catch (const Error&) {
    return false;
  }
}

void check_image_output(const std::string& path) {
  try {
    image::image_format_of(path);
    check_output_file(path);
  } catch (const Error& e) {
    fail("write_image ", path, ": ", e.what());
  }
}

void write_image(const std::string& path, const Tensor& picture) {
  try {
    const image::ImageFormat format = image::image_format_of(path);
    Tensor p = picture;
    if (p.defined() && p.ndim() == 3) p = p.reshape({p.dim(0), 1, p.dim(1), p.dim(2)});
    if (!p.defined() || p.ndim() != 4 || p.dim(1) != 1)
      fail("a picture is [3, height, width], got ", picture.defined() ? shape_str(picture.shape()) : "nothing");
    const video::RgbFrames rgb = video::rgb_from_tensor(p);
    write_output_file(path, [&](const std::string& tmp) {
      switch (format) {
        case image::ImageFormat::Png: image::encode_png(rgb.frame(0), rgb.width, rgb.height, tmp); break;
        case image::ImageFormat::Webp: image::encode_webp(rgb.frame(0), rgb.width, rgb.height, tmp); break;
        case image::ImageFormat::Jpeg: image::encode_jpeg(rgb.frame(0), rgb.width, rgb.height, tmp); break;
      }
    });
  } catch (const Error& e) {
    fail("write_image ", path, ": ", e.what());
  } catch (const std::exception& e) {  // bad_alloc, filesystem_error, ...
    fail("write_image ", path, ": ", e.what());
  }
}

}  // namespace raylight
