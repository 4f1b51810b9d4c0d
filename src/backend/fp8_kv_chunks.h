// fp8 attention over key chunks: which key ranges one fp8 attention call is split into.
//
// Why: on an H200 cuDNN's fp8 kernel reached 1,022 TFLOP/s at 32,760 keys but 929 at 75,600
// (40 heads x 128). The guess is that one head's e4m3 K and V (19 MB at 75,600 keys) no
// longer stay in L2 while the ~132 CTAs walk them; with fewer keys per call each call
// behaves like the 32k one. So a long call can run as several cuDNN calls over contiguous
// key ranges (the layout is [keys, heads, D]: a range of keys is a range of rows) whose
// outputs are merged by their log-sum-exp, q/k/v quantised once over all valid keys.
//
// The rule lives here, in one place, for the CUDA path, the CPU emulation (which must round
// the same per-chunk outputs) and the plans built at load. The geometry comes from the key
// buffer's length Lk, not from the valid keys, so a shape always has the same plans; valid
// only decides which chunks run (a chunk with no valid key is skipped, the last one that
// has some runs with its padding mask).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace raylight {

// Chunk settings (RAYLIGHT_FP8_KV_CHUNK's values and attention_fp8's kv_chunk argument):
// a positive count of keys per chunk, or one of these.
constexpr int64_t kFp8KvChunkRule = 0;      // the built-in rule below
constexpr int64_t kFp8KvChunkOff = -1;      // one call over every key (no chunking)
constexpr int64_t kFp8KvChunkFromEnv = -2;  // RAYLIGHT_FP8_KV_CHUNK (read once), else off

// Measured (H200, cuDNN 9.14, 40 heads x 128, quantisation apart): q 75,600 x k 37,888 ran at
// 939 TFLOP/s against 944 for the whole 75,600 keys, and shorter key ranges no faster
// (927-931): the L2 guess above was wrong. The card is power-capped (~690 of 700 W, SM clock
// ~1.7 GHz) through these calls. So chunking is off unless asked for; it stays selectable
// (RAYLIGHT_FP8_KV_CHUNK, the lab's --kv-chunk) as a measured losing variant.

// The built-in rule (RAYLIGHT_FP8_KV_CHUNK=0): a call over more
// than kFp8KvChunkAbove keys runs as ceil(Lk / kFp8KvChunkTarget) chunks of equal length,
// that length rounded up to a multiple of kFp8KvChunkAlign keys (the last chunk is shorter).
constexpr int64_t kFp8KvChunkAbove = 49152;
constexpr int64_t kFp8KvChunkTarget = 40960;
constexpr int64_t kFp8KvChunkAlign = 128;

// At most this many chunks per call (the merge kernel's operand count): a chunk length that
// would need more is raised to ceil(Lk / kFp8MaxKvChunks).
constexpr int kFp8MaxKvChunks = 16;

// The keys of every chunk but the last for a call over Lk keys under `setting`, or 0 when
// the call runs whole (setting off, or Lk not above the chunk length).
int64_t fp8_kv_chunk_length(int64_t Lk, int64_t setting);

struct Fp8KvChunk {
  int64_t begin = 0;  // first key of the chunk in the key buffer
  int64_t keys = 0;   // keys in the chunk (its cuDNN shape)
  int64_t valid = 0;  // of those, the valid ones (1 .. keys): the chunk's padding mask
};

// The chunks to run for Lk keys of which the first k_valid are valid (k_valid in [1, Lk]):
// empty when the call runs whole, else the chunks with at least one valid key, in order.
std::vector<Fp8KvChunk> fp8_kv_chunks(int64_t Lk, int64_t k_valid, int64_t setting);

// The distinct chunk lengths a call over Lk keys can use (all keys valid): the cuDNN shapes
// to build plans for at load. Empty when the call runs whole.
std::vector<int64_t> fp8_kv_chunk_shapes(int64_t Lk, int64_t setting);

// A setting from its text: "" or "0" -> the rule, "off" -> off, a positive key count -> it.
// Anything else is refused, naming `what` (the variable or option it came from).
int64_t parse_fp8_kv_chunk(const std::string& text, const std::string& what);

// kFp8KvChunkFromEnv resolved: RAYLIGHT_FP8_KV_CHUNK parsed the first time it is asked for
// (unset: the rule); other settings come back unchanged. A bad value is refused at each ask.
int64_t resolve_fp8_kv_chunk(int64_t setting);

// "off", "rule" or "N keys": how a setting reads in notes and the lab's lines.
std::string describe_fp8_kv_chunk(int64_t setting);

}  // namespace raylight
