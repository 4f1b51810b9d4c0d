// Reading and writing .safetensors files.
//
// Checkpoints are tens of GiB, so a file is memory-mapped read-only and tensors are
// zero-copy views into the mapping; each view holds a reference to its SafetensorsFile,
// so the mapping lives as long as any tensor taken from it. Headers come from untrusted
// downloads, so open() validates everything (types, offsets, sizes, overlaps) up front and
// reports any problem as a raylight::Error naming the file and tensor; after open() no
// accessor can read outside the mapping. Duplicate keys are refused, as the format's
// reference reader does (a JSON parser would silently keep the last one).
// A file truncated by another program while mapped does not kill the process (see
// io/mapping_faults.h): reads past the new end see zeros and check_intact() fails from then
// on, so whoever read the bytes reports the file instead of using them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace raylight {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range relative to the start of the data region
};

class SafetensorsFile : public std::enable_shared_from_this<SafetensorsFile> {
 public:
  // Maps `path` read-only and parses and validates its header.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  // The same over bytes that outlive every tensor taken from it (a model embedded in the
  // binary); `name` stands for the path in messages. Validated like a file.
  static std::shared_ptr<SafetensorsFile> view(const std::string& name, const void* data, size_t size);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // In file order (sorted by begin offset).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  // Zero-copy, read-only view into the mapping; keeps this file mapped while it lives.
  Tensor tensor(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t file_size() const { return size_; }
  // Offset of the data region from the start of the file (8 + header length).
  uint64_t data_offset() const { return data_offset_; }
  // Drops the mapping's pages that lie wholly inside [p, p + n) from this process (a reader
  // that copied what it needs: the model's bytes then count once, not twice). Views stay
  // valid: a later read faults the page in from the file again. Ranges outside the mapping
  // are ignored.
  void release_pages(const void* p, size_t n) const;
  // Error naming the file when a read of its mapping found the file cut short (after open()
  // validated it); readers call it after reading mapped bytes and before using them.
  void check_intact() const;

 private:
  struct Private {};

 public:
  SafetensorsFile(Private, std::string path);  // use open()

 private:
  void parse();

  std::string path_;
  const uint8_t* base_ = nullptr;  // whole file mapping (or the viewed bytes)
  uint64_t size_ = 0;
  bool mapped_ = false;            // base_ is our mapping: unmap it, may drop its pages
  uint64_t data_offset_ = 0;
  int mapping_slot_ = -1;  // in the SIGBUS registry
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Error naming the first mapped safetensors file (still open) whose mapping faulted; every
// output writer calls it before it commits, so no output is made from a file cut short.
void check_mapped_files_intact();

// Writes contiguous host tensors (any dtype) and metadata to `path` by the output policy of
// io/output_file.h: staged as `path`.tmp-<pid>, fsynced and renamed into place (or copied
// into a pipe); a path that is a folder, device or socket is refused; on any error the
// temporary file is removed and an Error is thrown. The data region starts 8-byte aligned, and tensors
// are laid out by decreasing element size (stable otherwise), so every tensor is naturally
// aligned. Tensors are packed without gaps, as other safetensors readers require.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace raylight
