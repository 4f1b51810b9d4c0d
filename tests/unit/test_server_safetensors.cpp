// The in-memory safetensors codec of the server: round trips, and refusal of every kind of
// hostile header (a request body is untrusted input).
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "server/safetensors_body.h"

using namespace raylight;
using namespace raylight::server;

namespace {

// A body with the given header JSON text and `data_bytes` bytes of data.
std::string body_with(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(uint64_t(header.size()) >> (8 * i));
  return out + header + std::string(data_bytes, '\x11');
}

std::string expect_refused(const std::string& body) {
  try {
    decode_safetensors(body);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted a bad body";
  return "";
}

}  // namespace

TEST(ServerSafetensorsBody, RoundTripsTensorsAndMetadata) {
  Tensor a = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = Tensor::from_vector({3}, {7, 8, 9}).to_dtype(DType::BF16);
  Tensor empty = Tensor::empty({0, 4});
  std::string body = encode_safetensors({{"a", a}, {"b", b}, {"e", empty}}, {{"request", "{\"x\":1}"}});
  TensorBundle got = decode_safetensors(body);
  ASSERT_EQ(got.tensors.size(), 3u);
  ASSERT_NE(got.find("a"), nullptr);
  EXPECT_EQ(got.find("a")->shape(), (Shape{2, 3}));
  EXPECT_EQ(std::memcmp(got.find("a")->raw(), a.raw(), a.nbytes()), 0);
  EXPECT_EQ(got.find("b")->dtype(), DType::BF16);
  EXPECT_EQ(std::memcmp(got.find("b")->raw(), b.raw(), b.nbytes()), 0);
  EXPECT_EQ(got.find("e")->numel(), 0);
  EXPECT_EQ(got.find("zzz"), nullptr);
  EXPECT_EQ(got.metadata.at("request"), "{\"x\":1}");
  // The data region starts 8-byte aligned.
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(body[i]);
  EXPECT_EQ((8 + n) % 8, 0u);
}

TEST(ServerSafetensorsBody, RefusesHostileBodies) {
  const std::string ok = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  EXPECT_NO_THROW(decode_safetensors(body_with(ok, 8)));
  struct Case {
    std::string body, words;
  } cases[] = {
      {"abc", "shorter than the 8-byte"},
      {std::string(8, '\0'), "header length is 0"},
      {std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}", "exceeds the limit"},
      {std::string("\x40\x00\x00\x00\x00\x00\x00\x00", 8) + "{}", "runs past the end"},
      {body_with("{not json", 0), "not valid JSON"},
      {body_with("[1,2]", 0), "not a JSON object"},
      {body_with(std::string(20, '[') + std::string(20, ']'), 0), "nests deeper"},
      {body_with(ok, 4), "ends at byte 8 but the data region holds 4"},
      {body_with(ok, 12), "4 bytes after the last tensor"},
      {body_with(R"({"t":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})", 8), "unknown dtype"},
      {body_with(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8), "negative or non-integer"},
      {body_with(R"({"t":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8), "negative or non-integer"},
      {body_with(R"({"t":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}})", 8), "too large"},
      {body_with(R"({"t":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})", 4), "dims"},
      {body_with(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4), "needs 8"},
      {body_with(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8), "begin 8 > end 0"},
      {body_with(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8), "two non-negative"},
      {body_with(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}})", 8), "unexpected field"},
      {body_with(R"({"t":{"dtype":"F32","shape":[2]}})", 8), "data_offsets"},
      {body_with(R"({"t":[]})", 0), "not an object"},
      {body_with(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12), "without gaps or overlaps"},
      {body_with(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8), "starts at byte 4"},
      {body_with(R"({"__metadata__":{"k":1}})", 0), "not a string"},
      {body_with(R"({"__metadata__":[]})", 0), "__metadata__ is not an object"},
  };
  for (const Case& c : cases) {
    std::string msg = expect_refused(c.body);
    EXPECT_NE(msg.find(c.words), std::string::npos) << "message: " << msg << "\nexpected: " << c.words;
    EXPECT_EQ(msg.rfind("body: ", 0), 0u) << msg;
  }
}

TEST(ServerSafetensorsBody, LimitsTheNumberOfTensors) {
  std::vector<std::pair<std::string, Tensor>> many;
  for (int i = 0; i < 70; ++i) many.emplace_back("t" + std::to_string(i), Tensor::from_vector({1}, {1.0f}));
  std::string msg = expect_refused(encode_safetensors(many));
  EXPECT_NE(msg.find("more than 64 tensors"), std::string::npos) << msg;
  EXPECT_THROW(encode_safetensors({{"a", Tensor()}, {"a", Tensor()}}), Error);
}
