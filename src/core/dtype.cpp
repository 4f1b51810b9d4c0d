// Conversions are written once, generically over (exponent bits, mantissa bits), from the
// fp32 bit pattern, so fp16, e4m3 and e5m2 share one rounding routine that tests check on
// every code. bf16 is the top half of fp32 and gets its own two-line rounding.
#include "core/dtype.h"

#include <bit>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace raylight {
namespace {

struct SmallFloat {
  int exp_bits;
  int man_bits;
  bool has_inf;  // false: e4m3fn, whose top code is NaN and whose overflow saturates
};

constexpr SmallFloat kF16{5, 10, true};
constexpr SmallFloat kE4M3{4, 3, false};
constexpr SmallFloat kE5M2{5, 2, true};

// Shifts m right by s bits, rounding to nearest with ties to even.
uint32_t shift_round_even(uint32_t m, int s) {
  if (s <= 0) return m << -s;
  if (s > 31) return 0;
  uint32_t kept = m >> s;
  uint32_t rest = m & ((1u << s) - 1);
  uint32_t half = 1u << (s - 1);
  if (rest > half || (rest == half && (kept & 1))) kept++;
  return kept;
}

uint32_t encode_small(float v, SmallFloat f) {
  const uint32_t bits = std::bit_cast<uint32_t>(v);
  const uint32_t sign = (bits >> 31) << (f.exp_bits + f.man_bits);
  const int bias = (1 << (f.exp_bits - 1)) - 1;
  const uint32_t exp_all_ones = (1u << f.exp_bits) - 1;
  if (std::isnan(v)) {
    return f.has_inf ? sign | (exp_all_ones << f.man_bits) | (1u << (f.man_bits - 1))
                     : sign | (exp_all_ones << f.man_bits) | ((1u << f.man_bits) - 1);
  }
  const uint32_t max_finite = f.has_inf ? (exp_all_ones << f.man_bits) - 1
                                        : (exp_all_ones << f.man_bits) | ((1u << f.man_bits) - 2);
  if (std::isinf(v)) return f.has_inf ? sign | (exp_all_ones << f.man_bits) : sign | max_finite;

  const int exp32 = static_cast<int>((bits >> 23) & 0xff);
  if (exp32 == 0) return sign;  // fp32 subnormals are far below every target's smallest value
  const uint32_t mant = (1u << 23) | (bits & 0x7fffff);
  const int e = exp32 - 127;
  const int min_normal_exp = 1 - bias;
  uint32_t code;
  if (e < min_normal_exp) {
    // Subnormal in the target: the exponent field is 0; a carry turns it into the smallest normal.
    code = shift_round_even(mant, 23 - f.man_bits + (min_normal_exp - e));
  } else {
    uint32_t q = shift_round_even(mant, 23 - f.man_bits);  // includes the implicit bit
    code = (static_cast<uint32_t>(e + bias) << f.man_bits) + (q - (1u << f.man_bits));
  }
  if (code > max_finite) {
    code = f.has_inf ? (exp_all_ones << f.man_bits) : max_finite;
  }
  return sign | code;
}

float decode_small(uint32_t code, SmallFloat f) {
  const int bias = (1 << (f.exp_bits - 1)) - 1;
  const uint32_t exp_all_ones = (1u << f.exp_bits) - 1;
  const bool negative = (code >> (f.exp_bits + f.man_bits)) & 1;
  const uint32_t exp = (code >> f.man_bits) & exp_all_ones;
  const uint32_t man = code & ((1u << f.man_bits) - 1);
  float mag;
  if (f.has_inf && exp == exp_all_ones) {
    mag = man ? NAN : INFINITY;
  } else if (!f.has_inf && exp == exp_all_ones && man == (1u << f.man_bits) - 1) {
    mag = NAN;
  } else if (exp == 0) {
    mag = std::ldexp(static_cast<float>(man), 1 - bias - f.man_bits);
  } else {
    mag = std::ldexp(static_cast<float>(man | (1u << f.man_bits)),
                     static_cast<int>(exp) - bias - f.man_bits);
  }
  return negative ? -mag : mag;
}

}  // namespace

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: return 2;
    case DType::F8E4M3: case DType::F8E5M2: case DType::U8: return 1;
  }
  return 0;
}

std::string dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F8E4M3: return "F8_E4M3";
    case DType::F8E5M2: return "F8_E5M2";
    case DType::U8: return "U8";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::F64: return "F64";
  }
  return "?";
}

bool dtype_from_name(const std::string& name, DType* out) {
  static const std::pair<const char*, DType> kNames[] = {
      {"F32", DType::F32},        {"F16", DType::F16}, {"BF16", DType::BF16},
      {"F8_E4M3", DType::F8E4M3}, {"F8_E5M2", DType::F8E5M2}, {"U8", DType::U8},
      {"I32", DType::I32},        {"I64", DType::I64}, {"F64", DType::F64}};
  for (const auto& [n, t] : kNames) {
    if (name == n) { *out = t; return true; }
  }
  return false;
}

bool dtype_is_float(DType t) {
  return t != DType::U8 && t != DType::I32 && t != DType::I64;
}

uint16_t f32_to_bf16(float v) {
  uint32_t bits = std::bit_cast<uint32_t>(v);
  if (std::isnan(v)) return static_cast<uint16_t>((bits >> 16) | 0x40);  // keep it a quiet NaN
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}
float bf16_to_f32(uint16_t v) { return std::bit_cast<float>(static_cast<uint32_t>(v) << 16); }

uint16_t f32_to_f16(float v) { return static_cast<uint16_t>(encode_small(v, kF16)); }
float f16_to_f32(uint16_t v) { return decode_small(v, kF16); }
uint8_t f32_to_e4m3(float v) { return static_cast<uint8_t>(encode_small(v, kE4M3)); }
float e4m3_to_f32(uint8_t v) { return decode_small(v, kE4M3); }
uint8_t f32_to_e5m2(float v) { return static_cast<uint8_t>(encode_small(v, kE5M2)); }
float e5m2_to_f32(uint8_t v) { return decode_small(v, kE5M2); }

void convert_to_f32(DType from, const void* src, float* dst, size_t n) {
  switch (from) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::F64: {
      auto* s = static_cast<const double*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case DType::BF16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::F16: {
      // A table is exact and much faster than decoding each value.
      static const float* table = [] {
        auto* t = new float[65536];
        for (uint32_t c = 0; c < 65536; ++c) t[c] = f16_to_f32(static_cast<uint16_t>(c));
        return t;
      }();
      auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = table[s[i]];
      return;
    }
    case DType::F8E4M3: case DType::F8E5M2: {
      float table[256];
      for (int c = 0; c < 256; ++c)
        table[c] = from == DType::F8E4M3 ? e4m3_to_f32(static_cast<uint8_t>(c))
                                         : e5m2_to_f32(static_cast<uint8_t>(c));
      auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = table[s[i]];
      return;
    }
    case DType::U8: {
      auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = s[i];
      return;
    }
    case DType::I32: {
      auto* s = static_cast<const int32_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case DType::I64: {
      auto* s = static_cast<const int64_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
  }
}

void convert_from_f32(DType to, const float* src, void* dst, size_t n) {
  switch (to) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::F64: {
      auto* d = static_cast<double*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = src[i];
      return;
    }
    case DType::BF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::F16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      return;
    }
    case DType::F8E4M3: {
      auto* d = static_cast<uint8_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_e4m3(src[i]);
      return;
    }
    case DType::F8E5M2: {
      auto* d = static_cast<uint8_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_e5m2(src[i]);
      return;
    }
    default:
      fail("cannot convert fp32 to ", dtype_name(to));
  }
}

}  // namespace raylight
