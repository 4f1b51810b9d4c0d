// Tensor bookkeeping. Shapes come from files and options, so every product of dims and
// every byte count is overflow-checked here, once: a shape whose element count or byte size
// does not fit is an Error naming the shape, never a wrapped number that allocates too little.
#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "core/error.h"

namespace raylight {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  // The product of the non-zero dims must fit too, so that strides (which skip zero dims'
  // effect only at the end) never overflow either.
  int64_t n = 1;
  bool zero = false;
  for (int64_t d : s) {
    if (d < 0) fail("negative dimension in shape ", shape_str(s));
    if (d == 0) {
      zero = true;
      continue;
    }
    if (__builtin_mul_overflow(n, d, &n)) fail("shape ", shape_str(s), " has too many elements");
  }
  return zero ? 0 : n;
}

size_t shape_nbytes(const Shape& s, DType dtype) {
  const int64_t n = shape_numel(s);
  size_t bytes = 0;
  if (__builtin_mul_overflow(static_cast<size_t>(n), dtype_size(dtype), &bytes) ||
      bytes > static_cast<size_t>(INT64_MAX))
    fail("shape ", shape_str(s), " of ", dtype_name(dtype), " is too large (", n,
         " elements do not fit in memory)");
  return bytes;
}

static std::vector<int64_t> contiguous_strides(const Shape& s) {
  std::vector<int64_t> st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    if (s[i] > 0) acc *= s[i];  // cannot overflow: shape_numel checked the product
  }
  return st;
}

Tensor Tensor::empty(Shape shape, DType dtype) {
  const size_t bytes = shape_nbytes(shape, dtype);  // checks dims and overflow
  Tensor t;
  t.shape_ = std::move(shape);
  t.strides_ = contiguous_strides(t.shape_);
  t.numel_ = shape_numel(t.shape_);
  t.dtype_ = dtype;
  // 64-byte alignment keeps vector loads aligned; size rounded up as aligned_alloc requires.
  // bytes <= INT64_MAX, so the rounding cannot wrap.
  void* p = std::aligned_alloc(64, ((bytes + 63) / 64) * 64 + 64);
  if (!p) fail("out of host memory allocating ", bytes, " bytes for a tensor of shape ",
               shape_str(t.shape_));
  t.owner_ = std::shared_ptr<void>(p, std::free);
  t.data_ = p;
  return t;
}

Tensor Tensor::zeros(Shape shape, DType dtype) {
  Tensor t = empty(std::move(shape), dtype);
  std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::view(void* data, Shape shape, DType dtype, std::shared_ptr<void> owner) {
  shape_nbytes(shape, dtype);  // a view of an impossible shape is refused like an allocation
  Tensor t;
  t.shape_ = std::move(shape);
  t.strides_ = contiguous_strides(t.shape_);
  t.numel_ = shape_numel(t.shape_);
  t.dtype_ = dtype;
  t.data_ = data;
  t.owner_ = std::move(owner);
  return t;
}

Tensor Tensor::device_view(void* data, Shape shape, DType dtype, Device device,
                           std::shared_ptr<void> owner) {
  Tensor t = view(data, std::move(shape), dtype, std::move(owner));
  t.device_ = device;
  return t;
}

Tensor Tensor::bytes_view(size_t offset, Shape shape, DType dtype) const {
  if (!is_contiguous()) fail("bytes_view of a non-contiguous tensor");
  const size_t n = shape_nbytes(shape, dtype);
  if (offset > nbytes() || n > nbytes() - offset)
    fail("bytes_view: ", n, " bytes at ", offset, " overrun a buffer of ", nbytes(), " bytes");
  return device_view(static_cast<uint8_t*>(data_) + offset, std::move(shape), dtype, device_, owner_);
}

Tensor Tensor::from_vector(Shape shape, const std::vector<float>& values) {
  Tensor t = empty(std::move(shape));
  if (static_cast<int64_t>(values.size()) != t.numel())
    fail("from_vector: ", values.size(), " values for shape ", shape_str(t.shape_));
  std::memcpy(t.data_, values.data(), values.size() * 4);
  return t;
}

bool Tensor::is_contiguous() const { return strides_ == contiguous_strides(shape_); }

float* Tensor::f32() {
  if (dtype_ != DType::F32 || !is_contiguous() || device_ != Device::CPU)
    fail("expected a contiguous host F32 tensor, got ", dtype_name(dtype_), " ", shape_str(shape_),
         device_ == Device::CPU ? "" : " on the GPU");
  return static_cast<float*>(data_);
}
const float* Tensor::f32() const { return const_cast<Tensor*>(this)->f32(); }

Tensor Tensor::reshape(Shape shape) const {
  if (!is_contiguous()) fail("reshape of a non-contiguous tensor");
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) fail("reshape: more than one -1 in ", shape_str(shape));
      infer = static_cast<int>(i);
    } else if (shape[i] < 0 || __builtin_mul_overflow(known, shape[i], &known)) {
      fail("cannot reshape ", shape_str(shape_), " to ", shape_str(shape));
    }
  }
  if (infer >= 0 && known != 0) shape[infer] = numel() / known;
  if (shape_numel(shape) != numel())
    fail("cannot reshape ", shape_str(shape_), " to ", shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  t.strides_ = contiguous_strides(t.shape_);
  t.numel_ = shape_numel(t.shape_);
  return t;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  if (!is_contiguous() || shape_.empty() || begin < 0 || end > shape_[0] || begin > end)
    fail("slice_rows [", begin, ", ", end, ") out of range for ", shape_str(shape_));
  Tensor t = *this;
  t.shape_[0] = end - begin;
  t.numel_ = shape_numel(t.shape_);
  size_t row_bytes = shape_[0] ? nbytes() / shape_[0] : 0;
  t.data_ = static_cast<char*>(data_) + begin * row_bytes;
  return t;
}

Tensor Tensor::to_f32() const {
  if (device_ != Device::CPU) fail("to_f32 of a device tensor: download it first");
  if (dtype_ == DType::F32 && is_contiguous()) return *this;
  if (!is_contiguous()) fail("to_f32 of a non-contiguous tensor");
  Tensor t = empty(shape_, DType::F32);
  convert_to_f32(dtype_, data_, t.f32(), numel());
  return t;
}

Tensor Tensor::to_dtype(DType dtype) const {
  Tensor src = to_f32();
  Tensor t = empty(shape_, dtype);
  convert_from_f32(dtype, src.f32(), t.data_, numel());
  return t;
}

Tensor Tensor::clone() const {
  if (device_ != Device::CPU) fail("clone of a device tensor: use the backend's copy");
  if (!is_contiguous()) fail("clone of a non-contiguous tensor");
  Tensor t = empty(shape_, dtype_);
  std::memcpy(t.data_, data_, nbytes());
  return t;
}

}  // namespace raylight
