// The per-format picture encoders behind write_image (internal to src/io/image): each
// writes a complete file at `file` (a temporary; the caller renames it into place).
#pragma once

#include <cstdint>
#include <string>

namespace raylight::image {

enum class ImageFormat { Png, Webp, Jpeg };

// Extension -> format; an Error listing the supported ones (this build's) otherwise.
ImageFormat image_format_of(const std::string& path);

// rgb: height rows of width RGB byte triples, top-down.
void encode_png(const uint8_t* rgb, int64_t width, int64_t height, const std::string& file);
void encode_webp(const uint8_t* rgb, int64_t width, int64_t height, const std::string& file);
void encode_jpeg(const uint8_t* rgb, int64_t width, int64_t height, const std::string& file);

// Whether this build has the optional encoders.
bool have_webp();
bool have_jpeg();

}  // namespace raylight::image
