// Exact conversions: every fp8 code round-trips, every midpoint between neighbouring codes
// rounds to the even one, and the edges (NaN, inf, subnormals, saturation) behave as the
// header documents.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <vector>

#include "core/dtype.h"

using namespace raylight;

namespace {

struct Fp8 {
  const char* name;
  uint8_t (*encode)(float);
  float (*decode)(uint8_t);
};

const Fp8 kFormats[] = {{"e4m3", f32_to_e4m3, e4m3_to_f32}, {"e5m2", f32_to_e5m2, e5m2_to_f32}};

// Positive finite codes in increasing order of value.
std::vector<uint8_t> positive_finite(const Fp8& f) {
  std::vector<uint8_t> codes;
  for (int c = 0; c < 128; ++c)
    if (std::isfinite(f.decode(static_cast<uint8_t>(c)))) codes.push_back(static_cast<uint8_t>(c));
  return codes;
}

}  // namespace

TEST(DType, Fp8EveryCodeRoundTrips) {
  for (const auto& f : kFormats) {
    for (int c = 0; c < 256; ++c) {
      const float v = f.decode(static_cast<uint8_t>(c));
      if (std::isnan(v)) {
        EXPECT_TRUE(std::isnan(f.decode(f.encode(v)))) << f.name << " code " << c;
      } else {
        EXPECT_EQ(f.encode(v), c) << f.name << " code " << c << " value " << v;
      }
    }
  }
}

TEST(DType, Fp8CodesAreMonotoneAndKnownValues) {
  for (const auto& f : kFormats) {
    auto codes = positive_finite(f);
    for (size_t i = 1; i < codes.size(); ++i)
      EXPECT_LT(f.decode(codes[i - 1]), f.decode(codes[i])) << f.name;
  }
  EXPECT_EQ(e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(e4m3_to_f32(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_EQ(e4m3_to_f32(0x08), std::ldexp(1.0f, -6));  // smallest normal
  EXPECT_EQ(e4m3_to_f32(0x38), 1.0f);
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0x7f)));
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0xff)));
  EXPECT_EQ(e5m2_to_f32(0x7b), 57344.0f);
  EXPECT_EQ(e5m2_to_f32(0x01), std::ldexp(1.0f, -16));
  EXPECT_EQ(e5m2_to_f32(0x3c), 1.0f);
  EXPECT_TRUE(std::isinf(e5m2_to_f32(0x7c)));
  EXPECT_TRUE(std::isnan(e5m2_to_f32(0x7d)));
  EXPECT_EQ(e4m3_to_f32(0x80), 0.0f);
  EXPECT_TRUE(std::signbit(e4m3_to_f32(0x80)));
}

TEST(DType, Fp8RoundsToNearestEven) {
  for (const auto& f : kFormats) {
    auto codes = positive_finite(f);
    for (size_t i = 1; i < codes.size(); ++i) {
      const float lo = f.decode(codes[i - 1]), hi = f.decode(codes[i]);
      const float mid = 0.5f * (lo + hi);  // exact in fp32: fp8 values have few bits
      const uint8_t even = (codes[i - 1] & 1) == 0 ? codes[i - 1] : codes[i];
      EXPECT_EQ(f.encode(mid), even) << f.name << " between " << lo << " and " << hi;
      EXPECT_EQ(f.encode(std::nextafter(mid, 0.0f)), codes[i - 1]) << f.name << " below " << mid;
      EXPECT_EQ(f.encode(std::nextafter(mid, 1e9f)), codes[i]) << f.name << " above " << mid;
      EXPECT_EQ(f.encode(-mid), even | 0x80) << f.name << " negative midpoint " << -mid;
    }
  }
}

TEST(DType, Fp8EdgeValues) {
  // e4m3fn has no infinity: overflow and inf saturate to +-448, NaN stays NaN.
  EXPECT_EQ(f32_to_e4m3(448.0f), 0x7e);
  EXPECT_EQ(f32_to_e4m3(464.0f), 0x7e);  // the midpoint to the (non-existent) 480 rounds down
  EXPECT_EQ(f32_to_e4m3(1e6f), 0x7e);
  EXPECT_EQ(f32_to_e4m3(-1e6f), 0xfe);
  EXPECT_EQ(f32_to_e4m3(INFINITY), 0x7e);
  EXPECT_EQ(f32_to_e4m3(-INFINITY), 0xfe);
  EXPECT_TRUE(std::isnan(e4m3_to_f32(f32_to_e4m3(NAN))));
  // e5m2 overflows to infinity like IEEE formats.
  EXPECT_EQ(f32_to_e5m2(57344.0f), 0x7b);
  EXPECT_EQ(f32_to_e5m2(61440.0f), 0x7c);  // midpoint to 65536 rounds to even: inf
  EXPECT_EQ(f32_to_e5m2(INFINITY), 0x7c);
  EXPECT_EQ(f32_to_e5m2(-INFINITY), 0xfc);
  EXPECT_TRUE(std::isnan(e5m2_to_f32(f32_to_e5m2(NAN))));
  // Below half the smallest subnormal: zero with the sign kept; at exactly half: ties to 0.
  EXPECT_EQ(f32_to_e4m3(std::ldexp(1.0f, -11)), 0x00);
  EXPECT_EQ(f32_to_e4m3(std::ldexp(1.0f, -10)), 0x00);
  EXPECT_EQ(f32_to_e4m3(std::ldexp(1.5f, -10)), 0x01);
  EXPECT_EQ(f32_to_e4m3(-std::ldexp(1.0f, -20)), 0x80);
  EXPECT_EQ(f32_to_e4m3(std::numeric_limits<float>::denorm_min()), 0x00);
  // Subnormal rounding up into the smallest normal.
  EXPECT_EQ(f32_to_e4m3(std::ldexp(1.0f, -6) * (1 - 1.0f / 32)), 0x08);
}

TEST(DType, HalfAndBfloatRoundTripAndRound) {
  for (uint32_t c = 0; c < 65536; ++c) {
    const float h = f16_to_f32(static_cast<uint16_t>(c));
    if (!std::isnan(h)) EXPECT_EQ(f32_to_f16(h), c) << "f16 code " << c;
    const float b = bf16_to_f32(static_cast<uint16_t>(c));
    if (!std::isnan(b)) EXPECT_EQ(f32_to_bf16(b), c) << "bf16 code " << c;
  }
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // halfway to 65536 -> even -> inf
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);        // tie to even (down)
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);    // tie to even (up)
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);        // tie to even (down)
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);    // tie to even (up)
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);  // just above the tie
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(NAN))));
  EXPECT_EQ(f32_to_bf16(INFINITY), 0x7f80);
}

TEST(DType, BulkConversionMatchesScalar) {
  std::vector<float> src = {0.0f, -1.5f, 3.14159f, 1e-3f, 500.0f, -1e-8f};
  std::vector<uint8_t> e4(src.size());
  convert_from_f32(DType::F8E4M3, src.data(), e4.data(), src.size());
  std::vector<float> back(src.size());
  convert_to_f32(DType::F8E4M3, e4.data(), back.data(), src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    EXPECT_EQ(e4[i], f32_to_e4m3(src[i]));
    EXPECT_EQ(back[i], e4m3_to_f32(e4[i]));
  }
  DType t;
  EXPECT_TRUE(dtype_from_name("F8_E4M3", &t));
  EXPECT_EQ(t, DType::F8E4M3);
  EXPECT_FALSE(dtype_from_name("F4", &t));
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
}
