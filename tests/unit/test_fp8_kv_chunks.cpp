// fp8 attention over key chunks (backend/fp8_kv_chunks.h): the chunk rule's geometry (what
// the CUDA path runs and prepare() builds plans for), the setting's text, and the CPU
// emulation's chunked arithmetic: merged by lse it keeps the exact lse, a call whose valid
// keys fit one chunk is the whole call, and the rule is the same as its explicit length.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/fp8_attention.h"
#include "backend/fp8_kv_chunks.h"
#include "core/error.h"
#include "sampling/noise.h"
#include "../tensor_compare.h"

using namespace raylight;

namespace {

Backend& cpu() {
  static std::unique_ptr<Backend> be = make_cpu_backend();
  return *be;
}

using test::rel_l2;

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  for (int64_t i = 0; i < a.numel(); ++i)
    if (a.f32()[i] != b.f32()[i]) return false;
  return true;
}

std::string refusal(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return "(accepted)";
}

// begin, keys, valid of each chunk, flattened.
std::vector<int64_t> flat(const std::vector<Fp8KvChunk>& chunks) {
  std::vector<int64_t> out;
  for (const Fp8KvChunk& c : chunks) out.insert(out.end(), {c.begin, c.keys, c.valid});
  return out;
}

}  // namespace

TEST(Fp8KvChunks, TheRuleSplitsOnlyLongCallsIntoEqualChunksOf128Keys) {
  // 720x1280x81: two chunks of ceil(37,800 / 128) * 128 keys, the last shorter.
  EXPECT_EQ(fp8_kv_chunk_length(75600, kFp8KvChunkRule), 37888);
  EXPECT_EQ(flat(fp8_kv_chunks(75600, 75600, kFp8KvChunkRule)), (std::vector<int64_t>{0, 37888, 37888, 37888, 37712, 37712}));
  EXPECT_EQ(fp8_kv_chunk_shapes(75600, kFp8KvChunkRule), (std::vector<int64_t>{37888, 37712}));
  // 480x832x81 and anything up to the threshold: one call.
  EXPECT_EQ(fp8_kv_chunk_length(32760, kFp8KvChunkRule), 0);
  EXPECT_EQ(fp8_kv_chunk_length(kFp8KvChunkAbove, kFp8KvChunkRule), 0);
  EXPECT_TRUE(fp8_kv_chunks(32760, 32760, kFp8KvChunkRule).empty());
  EXPECT_TRUE(fp8_kv_chunk_shapes(32760, kFp8KvChunkRule).empty());
  EXPECT_EQ(fp8_kv_chunk_length(kFp8KvChunkAbove + 1, kFp8KvChunkRule), 24704);
  EXPECT_EQ(fp8_kv_chunk_length(150000, kFp8KvChunkRule), 37504);  // 4 chunks
  EXPECT_EQ(fp8_kv_chunks(150000, 150000, kFp8KvChunkRule).size(), 4u);
  // Off: never.
  EXPECT_EQ(fp8_kv_chunk_length(75600, kFp8KvChunkOff), 0);
  EXPECT_EQ(fp8_kv_chunk_length(1 << 22, kFp8KvChunkOff), 0);
}

TEST(Fp8KvChunks, AnExplicitLengthIsKeptExactlyUpToTheChunkLimit) {
  EXPECT_EQ(flat(fp8_kv_chunks(75600, 75600, 37800)), (std::vector<int64_t>{0, 37800, 37800, 37800, 37800, 37800}));
  EXPECT_EQ(fp8_kv_chunks(75600, 75600, 25200).size(), 3u);
  EXPECT_EQ(fp8_kv_chunks(75600, 75600, 18900).size(), 4u);
  EXPECT_EQ(fp8_kv_chunk_shapes(32760, 16384), (std::vector<int64_t>{16384, 16376}));
  EXPECT_EQ(fp8_kv_chunk_shapes(32760, 10920), (std::vector<int64_t>{10920}));
  EXPECT_EQ(fp8_kv_chunk_length(1000, 1000), 0);  // one chunk is the whole call
  EXPECT_EQ(fp8_kv_chunk_length(1000, 5000), 0);
  // A length that would need more chunks than the merge takes is raised to fit.
  EXPECT_EQ(fp8_kv_chunk_length(1000, 1), 63);
  EXPECT_EQ(fp8_kv_chunks(1000, 1000, 1).size(), size_t(kFp8MaxKvChunks));
}

TEST(Fp8KvChunks, ChunksCoverTheKeysInOrderWithAtMostOneShorterLast) {
  for (int64_t Lk : {1, 2, 127, 128, 129, 1000, 49153, 75600, 100000, 1 << 20})
    for (int64_t setting : {kFp8KvChunkRule, int64_t(1), int64_t(7), int64_t(128), int64_t(40000)}) {
      const auto chunks = fp8_kv_chunks(Lk, Lk, setting);
      if (chunks.empty()) continue;
      ASSERT_GE(chunks.size(), 2u) << Lk << " " << setting;
      ASSERT_LE(chunks.size(), size_t(kFp8MaxKvChunks)) << Lk << " " << setting;
      int64_t next = 0;
      for (size_t i = 0; i < chunks.size(); ++i) {
        EXPECT_EQ(chunks[i].begin, next);
        EXPECT_EQ(chunks[i].valid, chunks[i].keys);
        EXPECT_GT(chunks[i].keys, 0);
        if (i + 1 < chunks.size()) EXPECT_EQ(chunks[i].keys, chunks[0].keys);
        next += chunks[i].keys;
      }
      EXPECT_EQ(next, Lk) << Lk << " " << setting;
    }
}

TEST(Fp8KvChunks, ValidKeysDecideWhichChunksRunAndTheLastOnesMask) {
  // The geometry stays the key buffer's (the plans are the shape's); chunks past the valid
  // keys are left out, the last one with valid keys runs with its padding mask.
  EXPECT_EQ(flat(fp8_kv_chunks(384, 200, 128)), (std::vector<int64_t>{0, 128, 128, 128, 128, 72}));
  EXPECT_EQ(flat(fp8_kv_chunks(384, 256, 128)), (std::vector<int64_t>{0, 128, 128, 128, 128, 128}));
  EXPECT_EQ(flat(fp8_kv_chunks(384, 257, 128)), (std::vector<int64_t>{0, 128, 128, 128, 128, 128, 256, 128, 1}));
  EXPECT_EQ(flat(fp8_kv_chunks(300, 1, 128)), (std::vector<int64_t>{0, 128, 1}));
  EXPECT_EQ(flat(fp8_kv_chunks(300, 300, 128)), (std::vector<int64_t>{0, 128, 128, 128, 128, 128, 256, 44, 44}));
}

TEST(Fp8KvChunks, TheSettingsTextIsAKeyCountZeroOrOff) {
  EXPECT_EQ(parse_fp8_kv_chunk("", "X"), kFp8KvChunkRule);
  EXPECT_EQ(parse_fp8_kv_chunk("0", "X"), kFp8KvChunkRule);
  EXPECT_EQ(parse_fp8_kv_chunk("off", "X"), kFp8KvChunkOff);
  EXPECT_EQ(parse_fp8_kv_chunk("37800", "X"), 37800);
  for (const char* bad : {"-5", "+5", "abc", "1e3", "12x", "3.5", "OFF", "99999999999999999999999"})
    EXPECT_NE(refusal([&] { parse_fp8_kv_chunk(bad, "RAYLIGHT_FP8_KV_CHUNK"); }).find("RAYLIGHT_FP8_KV_CHUNK must be"),
              std::string::npos)
        << bad;
  EXPECT_EQ(resolve_fp8_kv_chunk(kFp8KvChunkOff), kFp8KvChunkOff);
  EXPECT_EQ(resolve_fp8_kv_chunk(128), 128);
  EXPECT_GE(resolve_fp8_kv_chunk(kFp8KvChunkFromEnv), kFp8KvChunkOff);  // whatever the environment says, resolved
  EXPECT_EQ(describe_fp8_kv_chunk(kFp8KvChunkOff), "off");
  EXPECT_EQ(describe_fp8_kv_chunk(kFp8KvChunkRule), "rule");
  EXPECT_EQ(describe_fp8_kv_chunk(37800), "37800 keys");
  EXPECT_NE(refusal([] { fp8_kv_chunk_length(100, -3); }).find("key chunk setting"), std::string::npos);
}

TEST(Fp8KvChunks, ChunkedEmulationKeepsTheLseAndCostsAboutWhatOneCallCosts) {
  const Tensor q = gaussian_noise({64, 2, 128}, 31), k = gaussian_noise({300, 2, 128}, 32),
               v = gaussian_noise({300, 2, 128}, 33);
  Tensor lse_whole, lse_chunks, lse_exact;
  const Tensor whole = attention_fp8(cpu(), q, k, v, 290, &lse_whole, kFp8KvChunkOff);
  const Tensor chunks = attention_fp8(cpu(), q, k, v, 290, &lse_chunks, 128);  // 128 + 128 + 34 of 44
  const Tensor exact = cpu().attention(q, k, v, 290, &lse_exact);
  // Each chunk's lse is exact over its keys, so their log-sum-exp is the whole call's.
  EXPECT_LT(rel_l2(lse_chunks, lse_whole), 1e-6);
  // Each chunk rounds its own P and output: a different result, as accurate as one call.
  const double differ = rel_l2(chunks, whole), whole_err = rel_l2(whole, exact), chunks_err = rel_l2(chunks, exact);
  std::printf("fp8 emulation in 3 key chunks vs one call %.3e; vs exact: chunks %.3e, one call %.3e\n", differ,
              chunks_err, whole_err);
  EXPECT_GT(differ, 1e-3);
  EXPECT_LT(differ, 5e-2);
  EXPECT_LT(chunks_err, 1.3 * whole_err);
}

TEST(Fp8KvChunks, ValidKeysInsideTheFirstChunkGiveTheWholeCallBitForBit) {
  const Tensor q = gaussian_noise({40, 2, 64}, 41), k = gaussian_noise({300, 2, 64}, 42),
               v = gaussian_noise({300, 2, 64}, 43);
  Tensor lse_whole, lse_chunked;
  const Tensor whole = attention_fp8(cpu(), q, k, v, 100, &lse_whole, kFp8KvChunkOff);
  const Tensor chunked = attention_fp8(cpu(), q, k, v, 100, &lse_chunked, 128);
  EXPECT_TRUE(bitwise_equal(chunked, whole));
  EXPECT_TRUE(bitwise_equal(lse_chunked, lse_whole));
}

TEST(Fp8KvChunks, TheRuleIsItsExplicitLength) {
  // A call just over the threshold (few queries, small heads: cheap on the CPU).
  const int64_t Lk = kFp8KvChunkAbove + 8;
  const Tensor q = gaussian_noise({2, 1, 16}, 51), k = gaussian_noise({Lk, 1, 16}, 52), v = gaussian_noise({Lk, 1, 16}, 53);
  const Tensor rule = attention_fp8(cpu(), q, k, v, -1, nullptr, kFp8KvChunkRule);
  const Tensor explicit_length = attention_fp8(cpu(), q, k, v, -1, nullptr, fp8_kv_chunk_length(Lk, kFp8KvChunkRule));
  const Tensor whole = attention_fp8(cpu(), q, k, v, -1, nullptr, kFp8KvChunkOff);
  EXPECT_TRUE(bitwise_equal(rule, explicit_length));
  EXPECT_FALSE(bitwise_equal(rule, whole));
}
