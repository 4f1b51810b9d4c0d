#include "backend/fp8_kv_chunks.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "core/error.h"

namespace raylight {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// RAYLIGHT_FP8_KV_CHUNK as read once: its text, or unset.
struct EnvSetting {
  bool set = false;
  std::string text;
};

const EnvSetting& env_setting() {
  static const EnvSetting s = [] {
    EnvSetting e;
    if (const char* v = std::getenv("RAYLIGHT_FP8_KV_CHUNK")) {
      e.set = true;
      e.text = v;
    }
    return e;
  }();
  return s;
}

}  // namespace

int64_t fp8_kv_chunk_length(int64_t Lk, int64_t setting) {
  setting = resolve_fp8_kv_chunk(setting);
  if (setting == kFp8KvChunkOff || Lk <= 0) return 0;
  if (setting < 0) fail("fp8 attention: key chunk setting ", setting, " is neither a key count, the rule nor off");
  int64_t len = setting;
  if (setting == kFp8KvChunkRule) {
    if (Lk <= kFp8KvChunkAbove) return 0;
    len = ceil_div(ceil_div(Lk, ceil_div(Lk, kFp8KvChunkTarget)), kFp8KvChunkAlign) * kFp8KvChunkAlign;
  }
  len = std::max(len, ceil_div(Lk, kFp8MaxKvChunks));
  return len >= Lk ? 0 : len;
}

std::vector<Fp8KvChunk> fp8_kv_chunks(int64_t Lk, int64_t k_valid, int64_t setting) {
  const int64_t len = fp8_kv_chunk_length(Lk, setting);
  std::vector<Fp8KvChunk> chunks;
  if (len == 0) return chunks;
  const int64_t valid = std::clamp<int64_t>(k_valid, 0, Lk);
  for (int64_t begin = 0; begin < valid; begin += len) {
    const int64_t keys = std::min(len, Lk - begin);
    chunks.push_back({begin, keys, std::min(keys, valid - begin)});
  }
  return chunks;
}

std::vector<int64_t> fp8_kv_chunk_shapes(int64_t Lk, int64_t setting) {
  std::vector<int64_t> shapes;
  for (const Fp8KvChunk& c : fp8_kv_chunks(Lk, Lk, setting))
    if (std::find(shapes.begin(), shapes.end(), c.keys) == shapes.end()) shapes.push_back(c.keys);
  return shapes;
}

int64_t parse_fp8_kv_chunk(const std::string& text, const std::string& what) {
  if (text.empty() || text == "0") return kFp8KvChunkRule;
  if (text == "off") return kFp8KvChunkOff;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size() || text[0] == '-' || text[0] == '+' || v <= 0)
    fail(what, " must be a positive count of keys per chunk, 0 (the built-in rule) or off, got '", text, "'");
  return v;
}

int64_t resolve_fp8_kv_chunk(int64_t setting) {
  if (setting != kFp8KvChunkFromEnv) return setting;
  const EnvSetting& e = env_setting();
  return e.set ? parse_fp8_kv_chunk(e.text, "RAYLIGHT_FP8_KV_CHUNK") : kFp8KvChunkOff;
}

std::string describe_fp8_kv_chunk(int64_t setting) {
  setting = resolve_fp8_kv_chunk(setting);
  if (setting == kFp8KvChunkOff) return "off";
  if (setting == kFp8KvChunkRule) return "rule";
  return std::to_string(setting) + " keys";
}

}  // namespace raylight
