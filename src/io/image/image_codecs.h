// The per-format picture encoders behind write_image (internal to src/io/image): each
// writes a complete file at `file` (a temporary; the caller renames it into place).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace raylight::image {

enum class ImageFormat { Png, Webp, Jpeg };

// Extension -> format; an Error listing the supported ones (this build's) otherwise.
ImageFormat image_format_of(const std::string& path);

// rgb: height rows of width RGB byte triples, top-down.
void encode_png(const uint8_t* rgb, int64_t width, int64_t height, const std::string& file);
void encode_webp(const uint8_t* rgb, int64_t width, int64_t height, const std::string& file);
void encode_jpeg(const uint8_t* rgb, int64_t width, int64_t height, const std::string& file);

// Decoders (the picture reader, image_reader.h): a whole file's bytes -> 8-bit RGB rows
// (alpha dropped, as PIL's convert("RGB")), `width` x `height`; Errors say what is wrong
// without the path (the reader adds it). Sides above `max_side` are refused before decoding.
struct DecodedRgb {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> rgb;
};
DecodedRgb decode_png(const std::vector<uint8_t>& bytes, int64_t max_side);
DecodedRgb decode_webp(const std::vector<uint8_t>& bytes, int64_t max_side);
DecodedRgb decode_jpeg(const std::vector<uint8_t>& bytes, int64_t max_side);

// Whether this build has the optional encoders.
bool have_webp();
bool have_jpeg();

}  // namespace raylight::image
