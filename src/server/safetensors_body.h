// Safetensors in memory: the tensor bodies of the HTTP API (requests carry conditioning,
// latents and noise; responses carry latents). The file reader in src/io maps files; a
// request body is bytes from a socket, so this is its own small codec with the same rule:
// nothing in the header is trusted. Every offset, size, dtype, rank and name is checked
// before it is used, and each error is a raylight::Error whose message starts with
// "body:" and names the tensor, so the API can answer 400 with it.
//
// Decoded tensors are copies (never views into the body), so they are aligned for their
// dtype and outlive the request.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace raylight::server {

struct TensorBundle {
  std::vector<std::pair<std::string, Tensor>> tensors;  // in data order
  std::map<std::string, std::string> metadata;

  // The tensor called `name`, or nullptr.
  const Tensor* find(const std::string& name) const;
};

struct BodyLimits {
  size_t max_header_bytes = 1 << 20;  // a request names a handful of tensors
  size_t max_tensors = 64;
  int max_rank = 8;
};

// Parses a whole safetensors body. Rejects: short bodies, header lengths past the end,
// invalid or deeply nested JSON, unknown dtypes, negative or overflowing shapes, offsets
// outside the data region or not matching the shape, overlapping tensors, bytes after the
// last tensor, and non-string metadata.
TensorBundle decode_safetensors(std::string_view body, const BodyLimits& limits = {});

// Encodes contiguous host tensors (any dtype) with metadata; tensors are laid out in the
// given order, 8-byte aligned data region, as write_safetensors does for files.
std::string encode_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                               const std::map<std::string, std::string>& metadata = {});

}  // namespace raylight::server
