// safetensors reader/writer. The reader trusts nothing in the file: every number is range-
// and overflow-checked before it is used to compute an address, and nesting depth is
// bounded before the JSON parser sees the header, so a hostile header cannot crash us.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json_checks.h"
#include "io/mapping_faults.h"
#include "io/output_file.h"

namespace raylight {
namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;  // 100 MiB, as the reference implementation
constexpr int kMaxDepth = 16;                  // a valid header nests 3 deep

}  // namespace

SafetensorsFile::SafetensorsFile(Private, std::string path) : path_(std::move(path)) {}

SafetensorsFile::~SafetensorsFile() {
  unregister_mapping(mapping_slot_);
  if (base_ && mapped_) munmap(const_cast<uint8_t*>(base_), size_);
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::view(const std::string& name, const void* data, size_t size) {
  auto f = std::make_shared<SafetensorsFile>(Private{}, name);
  if (!data || size < 8)
    fail("safetensors ", name, ": ", size, " bytes, shorter than the 8-byte header length");
  f->base_ = static_cast<const uint8_t*>(data);
  f->size_ = size;
  f->parse();
  return f;
}

void SafetensorsFile::check_intact() const {
  if (!mapping_faulted(mapping_slot_)) return;
  struct stat st {};
  const bool now = ::stat(path_.c_str(), &st) == 0;
  fail("safetensors ", path_, ": the file was cut short while in use (",
       now ? std::to_string(st.st_size) + " bytes now, " : std::string(), size_,
       " when it was opened): another program truncated or rewrote it; load it again");
}

void check_mapped_files_intact() {
  const std::string path = first_faulted_mapping();
  if (!path.empty())
    fail("safetensors ", path, ": the file was cut short while in use (another program "
         "truncated or rewrote it); nothing was written from it");
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto f = std::make_shared<SafetensorsFile>(Private{}, path);
  // O_NONBLOCK: opening a FIFO for reading would wait for a writer forever; it is refused
  // below as not a regular file (for regular files the flag changes nothing).
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) fail("safetensors ", path, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail("safetensors ", path, ": cannot stat: ", std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("safetensors ", path, ": is ", describe_file_type(st.st_mode), ", not a regular file");
  }
  if (st.st_size < 8) {
    ::close(fd);
    fail("safetensors ", path, ": file is ", st.st_size,
         " bytes, shorter than the 8-byte header length (truncated or not a safetensors file)");
  }
  void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  ::close(fd);
  if (p == MAP_FAILED) fail("safetensors ", path, ": cannot mmap: ", std::strerror(e));
  f->base_ = static_cast<const uint8_t*>(p);
  f->size_ = static_cast<uint64_t>(st.st_size);
  f->mapping_slot_ = register_mapping(p, f->size_, path);
  f->mapped_ = true;
  f->parse();  // on error `f` is destroyed and unmaps
  return f;
}

void SafetensorsFile::release_pages(const void* p, size_t n) const {
  const auto at = reinterpret_cast<uintptr_t>(p), base = reinterpret_cast<uintptr_t>(base_);
  if (!mapped_ || at < base || at + n > base + size_ || n == 0) return;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t first = (at + page - 1) / page * page, last = (at + n) / page * page;
  // The mapping is private and never written, so dropped pages are re-read from the file.
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

void SafetensorsFile::parse() {
  const std::string& P = path_;
  uint64_t n = read_le64(base_);
  if (n == 0) fail("safetensors ", P, ": header length is 0");
  if (n > kMaxHeader)
    fail("safetensors ", P, ": header length ", n, " exceeds the 100 MiB limit (corrupt file?)");
  if (n > size_ - 8)
    fail("safetensors ", P, ": header length ", n, " runs past the end of the file (",
         size_, " bytes): truncated or not a safetensors file");
  data_offset_ = 8 + n;
  const uint64_t data_size = size_ - data_offset_;
  const char* text = reinterpret_cast<const char*>(base_ + 8);
  if (json_nesting_depth(std::string_view(text, n), kMaxDepth) > kMaxDepth)
    fail("safetensors ", P, ": invalid JSON header: nested deeper than ", kMaxDepth, " levels");

  nlohmann::json header;
  std::string duplicate;
  bool unique = true;
  try {
    unique = json_parse_unique_keys(std::string_view(text, n), &header, &duplicate);
  } catch (const nlohmann::json::exception& ex) {
    fail("safetensors ", P, ": invalid JSON header: ", ex.what());
  }
  if (!unique) fail("safetensors ", P, ": the header names '", duplicate, "' twice");
  if (!header.is_object()) fail("safetensors ", P, ": header is not a JSON object");

  try {
    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") {
        if (!entry.is_object()) fail("safetensors ", P, ": __metadata__ is not an object");
        for (const auto& [k, v] : entry.items()) {
          if (!v.is_string())
            fail("safetensors ", P, ": __metadata__ value for '", k, "' is not a string");
          metadata_[k] = v.get<std::string>();
        }
        continue;
      }
      auto bad = [&](const auto&... why) {
        fail("safetensors ", P, ": tensor '", name, "': ", why...);
      };
      if (!entry.is_object()) bad("entry is not an object");
      for (const auto& [k, v] : entry.items()) {
        (void)v;
        if (k != "dtype" && k != "shape" && k != "data_offsets") bad("unexpected field '", k, "'");
      }
      auto dt = entry.find("dtype");
      auto sh = entry.find("shape");
      auto off = entry.find("data_offsets");
      if (dt == entry.end() || !dt->is_string()) bad("missing or non-string \"dtype\"");
      if (sh == entry.end() || !sh->is_array()) bad("missing or non-array \"shape\"");
      if (off == entry.end() || !off->is_array()) bad("missing or non-array \"data_offsets\"");

      TensorInfo t;
      t.name = name;
      const std::string dname = dt->get<std::string>();
      if (!dtype_from_name(dname, &t.dtype)) bad("unknown dtype '", dname, "'");

      for (const auto& d : *sh) {
        uint64_t v = 0;
        if (!json_as_count(d, &v) || v > static_cast<uint64_t>(INT64_MAX))
          bad("shape ", sh->dump(), " has a negative, non-integer or too large dim");
        t.shape.push_back(static_cast<int64_t>(v));
      }
      // Bytes needed, overflow-checked (the non-zero dims of an empty tensor too).
      uint64_t nbytes = 0;
      bool fits = true;
      try {
        nbytes = shape_nbytes(t.shape, t.dtype);
      } catch (const Error&) {
        fits = false;
      }
      if (!fits) bad("shape ", shape_str(t.shape), " is too large");

      if (off->size() != 2 || !json_as_count((*off)[0], &t.begin) || !json_as_count((*off)[1], &t.end))
        bad("data_offsets ", off->dump(), " is not two non-negative integers");
      if (t.begin > t.end) bad("data_offsets begin ", t.begin, " > end ", t.end);
      if (t.end > data_size)
        bad("data ends at offset ", t.end, " but the data region holds ", data_size,
            " bytes: file is truncated (expected at least ", data_offset_ + t.end,
            " bytes, actual ", size_, ")");
      if (t.end - t.begin != nbytes)
        bad("data_offsets span ", t.end - t.begin, " bytes but ", dname, " ",
            shape_str(t.shape), " needs ", nbytes);
      tensors_.push_back(std::move(t));
    }
  } catch (const nlohmann::json::exception& ex) {  // should not happen: types are checked
    fail("safetensors ", P, ": malformed header: ", ex.what());
  }

  std::stable_sort(tensors_.begin(), tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const TensorInfo* prev = nullptr;  // non-empty tensor with the furthest end so far
  for (const TensorInfo& t : tensors_) {
    if (t.begin == t.end) continue;
    if (prev && t.begin < prev->end)
      fail("safetensors ", P, ": tensor '", t.name, "' bytes [", t.begin, ", ", t.end,
           ") overlap tensor '", prev->name, "' bytes [", prev->begin, ", ", prev->end, ")");
    if (!prev || t.end > prev->end) prev = &t;
  }
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("safetensors ", path_, ": no tensor named '", name, "'");
  return tensors_[it->second];
}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorInfo& t = info(name);
  auto* p = const_cast<uint8_t*>(base_ + data_offset_ + t.begin);
  return Tensor::view(p, t.shape, t.dtype,
                      std::const_pointer_cast<SafetensorsFile>(shared_from_this()));
}

// ---------------------------------------------------------------------------------------
// Writer

namespace {

void write_all(int fd, const void* data, size_t n, const std::string& tmp) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, std::min<size_t>(n, 1u << 30));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("cannot write ", tmp, ": ", std::strerror(errno));
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return dtype_size(tensors[a].second.dtype()) > dtype_size(tensors[b].second.dtype());
  });

  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (size_t i : order) {
    const auto& [name, t] = tensors[i];
    if (name == "__metadata__" || header.contains(name))
      fail("write_safetensors ", path, ": duplicate or reserved tensor name '", name, "'");
    if (!t.defined() || t.device() != Device::CPU || !t.is_contiguous())
      fail("write_safetensors ", path, ": tensor '", name,
           "' must be a defined, contiguous host tensor");
    header[name] = {{"dtype", dtype_name(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string json;
  try {
    json = header.dump();
  } catch (const nlohmann::json::exception& ex) {  // e.g. a name that is not valid UTF-8
    fail("write_safetensors ", path, ": cannot encode header: ", ex.what());
  }
  json.append((8 - json.size() % 8) % 8, ' ');  // 8 + len is then a multiple of 8
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(uint64_t(json.size()) >> (8 * i));

  write_output_file(path, [&](const std::string& tmp) {
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail("write_safetensors ", path, ": cannot create ", tmp, ": ", std::strerror(errno));
    try {
      write_all(fd, len, 8, tmp);
      write_all(fd, json.data(), json.size(), tmp);
      for (size_t i : order) {
        const Tensor& t = tensors[i].second;
        if (t.nbytes()) write_all(fd, t.raw(), t.nbytes(), tmp);
      }
    } catch (const Error& ex) {
      ::close(fd);
      fail("write_safetensors ", path, ": ", ex.what());
    }
    if (::close(fd) != 0) fail("write_safetensors ", path, ": cannot close ", tmp, ": ", std::strerror(errno));
  });
}

}  // namespace raylight
