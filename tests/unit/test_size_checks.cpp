// Issue 21, item 2 in core: element and byte counts are overflow-checked where a shape is
// set, so a huge shape is an Error naming it, never a wrapped count that allocates too little
// (a --width of 2^62 wrapped to 0 elements and crashed in Tensor::clone).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>

#include "core/error.h"
#include "core/finite.h"
#include "core/tensor.h"

using namespace raylight;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

constexpr int64_t kBig = int64_t{1} << 62;

}  // namespace

TEST(SizeChecks, ElementCountsThatDoNotFitAreErrors) {
  EXPECT_EQ(shape_numel({}), 1);
  EXPECT_EQ(shape_numel({16, 0, 16, 16}), 0);
  EXPECT_EQ(shape_numel({3, 5}), 15);
  EXPECT_NE(error_of([] { shape_numel({kBig, kBig}); }).find("too many elements"), std::string::npos);
  // The dims next to a zero must still fit: their product gives the strides.
  EXPECT_NE(error_of([] { shape_numel({0, kBig, kBig}); }).find("too many elements"), std::string::npos);
  EXPECT_NE(error_of([] { shape_numel({4, -1}); }).find("negative dimension"), std::string::npos);
  // 2^62 fp32 elements fit in int64 as a count but not as bytes.
  EXPECT_NE(error_of([] { shape_nbytes({kBig}, DType::F32); }).find("too large"), std::string::npos);
  EXPECT_EQ(shape_nbytes({kBig / 8}, DType::U8), static_cast<size_t>(kBig / 8));
}

TEST(SizeChecks, TensorsOfImpossibleShapesAreRefusedNotAllocatedShort) {
  // The case: 2^62 x 2^62 pixels became 0 elements.
  const int64_t side = int64_t{4611686018427387904} / 8;
  EXPECT_NE(error_of([&] { Tensor::empty({16, 1, side, side}); }).find("too many elements"), std::string::npos);
  EXPECT_NE(error_of([] { Tensor::zeros({kBig}, DType::F32); }).find("too large"), std::string::npos);
  float x = 0;
  EXPECT_NE(error_of([&] { Tensor::view(&x, {kBig, 4}, DType::F32, nullptr); }).find("too many elements"), std::string::npos);
  EXPECT_NE(error_of([&] { Tensor::view(&x, {kBig / 2}, DType::F32, nullptr); }).find("too large"), std::string::npos);
  Tensor t = Tensor::zeros({4, 4});
  EXPECT_NE(error_of([&] { t.reshape({kBig, kBig, 0}); }).find("cannot reshape"), std::string::npos);
  EXPECT_NE(error_of([&] { t.reshape({-2, 8}); }).find("cannot reshape"), std::string::npos);
  EXPECT_NE(error_of([&] { t.bytes_view(8, {kBig}, DType::U8); }).find("overrun"), std::string::npos);
  EXPECT_NE(error_of([&] { t.bytes_view(SIZE_MAX - 4, {8}, DType::U8); }).find("overrun"), std::string::npos);
  EXPECT_EQ(t.bytes_view(60, {4}, DType::U8).nbytes(), 4u);
}

TEST(SizeChecks, FiniteF32RefusesIntegersAndNonFiniteValues) {
  EXPECT_NE(error_of([] { finite_f32(Tensor::zeros({2}, DType::I64), "tensor 'context'"); })
                .find("tensor 'context' is I64; it must hold floating-point values"),
            std::string::npos);
  Tensor t = Tensor::from_vector({3}, {1, 2, 3});
  EXPECT_EQ(finite_f32(t, "x").numel(), 3);
  t.f32()[2] = -INFINITY;
  EXPECT_NE(error_of([&] { finite_f32(t, "the latent"); }).find("the latent has a NaN or infinite value at element 2"),
            std::string::npos);
  EXPECT_EQ(finite_f32(Tensor::zeros({2}).to_dtype(DType::BF16), "b").dtype(), DType::F32);
}
