// A tensor is a typed view of bytes: shape, strides (in elements), dtype, device, and a
// shared owner that keeps the bytes alive (a heap buffer, or a memory-mapped file when the
// tensor is a zero-copy view into a checkpoint). Copies of a Tensor share the bytes.
//
// The CPU reference ops work on contiguous fp32 tensors; `to_f32()` is how stored weights
// (bf16, fp16, fp8) become compute tensors.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace raylight {

enum class Device : uint8_t { CPU, CUDA };

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);
// Element count; an Error for a negative dim or a count that does not fit in int64 (the
// product of the non-zero dims is checked too, so strides fit as well).
int64_t shape_numel(const Shape& s);
// Bytes of a contiguous tensor of `s` x `dtype`; an Error when they do not fit in int64.
size_t shape_nbytes(const Shape& s, DType dtype);

class Tensor {
 public:
  Tensor() = default;

  // Fresh contiguous host tensor; `zeros` clears it, `empty` leaves it uninitialised.
  static Tensor empty(Shape shape, DType dtype = DType::F32);
  static Tensor zeros(Shape shape, DType dtype = DType::F32);
  // Wraps existing bytes without copying; `owner` keeps them alive.
  static Tensor view(void* data, Shape shape, DType dtype, std::shared_ptr<void> owner);
  // fp32 tensor holding the given values (tests and small constants).
  static Tensor from_vector(Shape shape, const std::vector<float>& values);

  bool defined() const { return data_ != nullptr || numel() == 0; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.at(i < 0 ? shape_.size() + i : i); }
  int ndim() const { return static_cast<int>(shape_.size()); }
  const std::vector<int64_t>& strides() const { return strides_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  int64_t numel() const { return numel_; }
  // Cannot overflow: every constructor checked shape_nbytes.
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  bool is_contiguous() const;

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <typename T> T* data() { return static_cast<T*>(data_); }
  template <typename T> const T* data() const { return static_cast<const T*>(data_); }
  float* f32();              // checks dtype F32 and contiguity
  const float* f32() const;

  // Same bytes, new shape (contiguous tensors only; one dim may be -1).
  Tensor reshape(Shape shape) const;
  // Rows [begin, end) of dim 0, sharing the bytes.
  Tensor slice_rows(int64_t begin, int64_t end) const;
  // A contiguous fp32 copy (or this tensor when it already is one).
  Tensor to_f32() const;
  // A contiguous copy in `dtype`, converting from fp32 (source must be fp32).
  Tensor to_dtype(DType dtype) const;
  Tensor clone() const;

  // Per-tensor dequantisation scale of a quantised weight (real value = stored * scale);
  // 1 for everything else. Backends that compute in fp8 read it instead of dequantising.
  float scale() const { return scale_; }
  Tensor with_scale(float s) const {
    Tensor t = *this;
    t.scale_ = s;
    return t;
  }
  // This contiguous tensor's bytes from `offset` read as `shape` x `dtype`, on the same
  // device and sharing its owner (weight stores cut weights out of packed byte buffers).
  Tensor bytes_view(size_t offset, Shape shape, DType dtype) const;
  // Marks bytes as living on `device` (set by backends that allocate device memory).
  static Tensor device_view(void* data, Shape shape, DType dtype, Device device,
                            std::shared_ptr<void> owner);

 private:
  Shape shape_;
  std::vector<int64_t> strides_;
  int64_t numel_ = 1;  // shape_numel(shape_), checked when the shape was set
  DType dtype_ = DType::F32;
  Device device_ = Device::CPU;
  void* data_ = nullptr;
  std::shared_ptr<void> owner_;
  float scale_ = 1.0f;
};

}  // namespace raylight
