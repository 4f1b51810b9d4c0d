// Element types and exact conversions between them.
//
// Storage dtypes are the ones checkpoints use; compute on the CPU backend is fp32.
// Every narrowing conversion rounds to nearest, ties to even, like the hardware
// (and PyTorch) do, so a value converted here and on the GPU gives the same bits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace raylight {

enum class DType : uint8_t { F32, F16, BF16, F8E4M3, F8E5M2, U8, I32, I64, F64 };

size_t dtype_size(DType t);
// Name as written in safetensors headers ("F32", "BF16", "F8_E4M3", ...).
std::string dtype_name(DType t);
// Parses a safetensors dtype name; returns false when it is not one we support.
bool dtype_from_name(const std::string& name, DType* out);
bool dtype_is_float(DType t);

uint16_t f32_to_bf16(float v);
float bf16_to_f32(uint16_t v);
uint16_t f32_to_f16(float v);
float f16_to_f32(uint16_t v);
// fp8 e4m3fn: no infinities, 0x7f/0xff are NaN, finite values saturate at +-448.
uint8_t f32_to_e4m3(float v);
float e4m3_to_f32(uint8_t v);
// fp8 e5m2: IEEE-like, with infinities; out-of-range values round to inf like fp16 does.
uint8_t f32_to_e5m2(float v);
float e5m2_to_f32(uint8_t v);

// Converts n elements of type `from` at src into fp32 at dst.
void convert_to_f32(DType from, const void* src, float* dst, size_t n);
// Converts n fp32 elements at src into type `to` at dst.
void convert_from_f32(DType to, const float* src, void* dst, size_t n);

}  // namespace raylight
