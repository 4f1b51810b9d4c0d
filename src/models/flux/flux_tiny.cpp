#include "models/flux/flux_tiny.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "models/clip/clip_text_encoder.h"
#include "models/clip/clip_tiny.h"
#include "sampling/noise.h"

namespace raylight {
namespace {

// GPT-2's byte -> printable character table (the pieces of a byte-level BPE), as UTF-8.
std::vector<std::string> byte_pieces() {
  std::vector<std::string> out(256);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    const int cp = printable ? b : next++;
    std::string u;
    if (cp < 0x80) {
      u += static_cast<char>(cp);
    } else {
      u += static_cast<char>(0xC0 | (cp >> 6));
      u += static_cast<char>(0x80 | (cp & 0x3F));
    }
    out[static_cast<size_t>(b)] = u;
  }
  return out;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

Tensor bytes_tensor(const std::string& s) {
  Tensor t = Tensor::empty({static_cast<int64_t>(s.size())}, DType::U8);
  std::copy(s.begin(), s.end(), static_cast<char*>(t.raw()));
  return t;
}

}  // namespace

FluxConfig flux_tiny_config() {
  FluxConfig c;
  c.hidden = 64;
  c.num_heads = 2;
  c.mlp_hidden = 128;
  c.depth = 2;
  c.depth_single = 2;
  c.context_in = 64;  // the tiny T5's d_model
  c.vec_in = 32;      // the tiny CLIP's width
  c.guidance_embed = true;
  return c;
}

std::unique_ptr<MemoryWeights> flux_tiny_weights() {
  const FluxConfig c = flux_tiny_config();
  auto w = std::make_unique<MemoryWeights>();
  for (const auto& [name, shape] : flux_expected_tensors(c)) {
    Tensor t = gaussian_noise(shape, name_seed(name));
    float* p = t.f32();
    const bool weight = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
    double scale = 0.1, offset = 0.0;
    if (weight && shape.size() >= 2) scale = 1.0 / std::sqrt(static_cast<double>(shape_numel(shape) / shape[0]));
    else if (name.find("norm") != std::string::npos || name.find(".scale") != std::string::npos) offset = 1.0;
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(offset + scale * p[i]);
    w->put(name, t);
  }
  w->set_metadata({{"raylight.num_heads", std::to_string(c.num_heads)}, {"raylight.embedded", "tiny-flux"}});
  return w;
}

}  // namespace raylight

namespace raylight {

std::unique_ptr<MemoryWeights> flux_tiny_clip_weights() {
  auto w = clip_random_weights(clip_text_tiny_config());
  // Ids: the 256 byte pieces, the same with "</w>" (a word's last piece), two merged
  // pieces, then the two special tokens; 516 of the tiny vocabulary's 1024.
  const std::vector<std::string> pieces = byte_pieces();
  std::string vocab = "{";
  int id = 0;
  for (const char* suffix : {"", "</w>"})
    for (const auto& p : pieces) vocab += json_string(p + suffix) + ": " + std::to_string(id++) + ", ";
  // Two merges (BPE needs some): "th", "the</w>".
  vocab += "\"th\": " + std::to_string(id) + ", \"the</w>\": " + std::to_string(id + 1) + ", ";
  id += 2;
  vocab += "\"<|startoftext|>\": " + std::to_string(id) + ", \"<|endoftext|>\": " + std::to_string(id + 1) + "}";
  w->put(kClipVocabTensor, bytes_tensor(vocab));
  w->put(kClipMergesTensor, bytes_tensor("#version: 0.2\nt h\nth e</w>\n"));
  return w;
}

}  // namespace raylight
