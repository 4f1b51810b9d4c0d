// In-memory safetensors codec. Validation is done in two passes: first every header entry
// on its own (types, dtype, shape, byte count), then the entries together (sorted by offset
// they must tile the data region exactly, as the format's reference reader requires), so a
// body either decodes completely or not at all.
#include "server/safetensors_body.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json_checks.h"
#include "io/safetensors.h"

namespace raylight::server {
namespace {

constexpr int kMaxDepth = 8;  // a valid header nests 3 deep

struct Entry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

Entry parse_entry(const std::string& name, const nlohmann::json& e, int max_rank) {
  auto bad = [&](const auto&... why) { fail("body: tensor '", name, "': ", why...); };
  if (name.empty()) fail("body: a tensor has an empty name");
  if (!e.is_object()) bad("entry is not an object");
  for (const auto& [k, v] : e.items()) {
    (void)v;
    if (k != "dtype" && k != "shape" && k != "data_offsets") bad("unexpected field '", k, "'");
  }
  auto dt = e.find("dtype"), sh = e.find("shape"), off = e.find("data_offsets");
  if (dt == e.end() || !dt->is_string()) bad("missing or non-string \"dtype\"");
  if (sh == e.end() || !sh->is_array()) bad("missing or non-array \"shape\"");
  if (off == e.end() || !off->is_array()) bad("missing or non-array \"data_offsets\"");
  Entry t;
  t.name = name;
  const std::string dname = dt->get<std::string>();
  if (!dtype_from_name(dname, &t.dtype)) bad("unknown dtype '", dname, "'");
  if (static_cast<int>(sh->size()) > max_rank) bad("shape has ", sh->size(), " dims (at most ", max_rank, ")");
  uint64_t bytes = dtype_size(t.dtype);
  for (const auto& d : *sh) {
    uint64_t v = 0;
    if (!json_as_count(d, &v)) bad("shape ", sh->dump(), " has a negative or non-integer dim");
    t.shape.push_back(static_cast<int64_t>(v));
    if (__builtin_mul_overflow(bytes, v, &bytes) || bytes > static_cast<uint64_t>(INT64_MAX))
      bad("shape ", sh->dump(), " is too large");
  }
  if (off->size() != 2 || !json_as_count((*off)[0], &t.begin) || !json_as_count((*off)[1], &t.end))
    bad("data_offsets ", off->dump(), " is not two non-negative integers");
  if (t.begin > t.end) bad("data_offsets begin ", t.begin, " > end ", t.end);
  if (t.end - t.begin != bytes)
    bad("data_offsets span ", t.end - t.begin, " bytes but ", dname, " ", shape_str(t.shape),
        " needs ", bytes);
  return t;
}

}  // namespace

const Tensor* TensorBundle::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

TensorBundle decode_safetensors(std::string_view body, const BodyLimits& limits) {
  if (body.size() < 8)
    fail("body: ", body.size(), " bytes is shorter than the 8-byte safetensors header length");
  const uint64_t n = read_le64(reinterpret_cast<const uint8_t*>(body.data()));
  if (n == 0) fail("body: safetensors header length is 0");
  if (n > limits.max_header_bytes)
    fail("body: safetensors header of ", n, " bytes exceeds the limit of ", limits.max_header_bytes);
  if (n > body.size() - 8)
    fail("body: safetensors header length ", n, " runs past the end of the body (", body.size(),
         " bytes)");
  const std::string_view text = body.substr(8, n);
  const std::string_view data = body.substr(8 + n);
  if (json_nesting_depth(text, kMaxDepth) > kMaxDepth)
    fail("body: safetensors header nests deeper than ", kMaxDepth, " levels");
  nlohmann::json header;
  std::string duplicate;
  bool unique = true;
  try {
    unique = json_parse_unique_keys(text, &header, &duplicate);
  } catch (const nlohmann::json::exception& e) {
    fail("body: safetensors header is not valid JSON: ", e.what());
  }
  if (!unique) fail("body: safetensors header names '", duplicate, "' twice");
  if (!header.is_object()) fail("body: safetensors header is not a JSON object");

  TensorBundle out;
  std::vector<Entry> entries;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail("body: __metadata__ is not an object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) fail("body: __metadata__ value for '", k, "' is not a string");
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    if (entries.size() == limits.max_tensors)
      fail("body: more than ", limits.max_tensors, " tensors");
    entries.push_back(parse_entry(name, entry, limits.max_rank));
  }
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;  // the tensors must tile the data region: no gaps, no overlaps
  for (const Entry& t : entries) {
    if (t.begin == t.end) continue;
    if (t.begin != covered)
      fail("body: tensor '", t.name, "' starts at byte ", t.begin, " but the previous tensor ends at ",
           covered, " (tensors must be packed without gaps or overlaps)");
    if (t.end > data.size())
      fail("body: tensor '", t.name, "' ends at byte ", t.end, " but the data region holds ",
           data.size(), " bytes (truncated body?)");
    covered = t.end;
  }
  if (covered != data.size())
    fail("body: ", data.size() - covered, " bytes after the last tensor");
  for (const Entry& t : entries) {
    Tensor copy = Tensor::empty(t.shape, t.dtype);
    if (t.end > t.begin) std::memcpy(copy.raw(), data.data() + t.begin, t.end - t.begin);
    out.tensors.emplace_back(t.name, std::move(copy));
  }
  return out;
}

std::string encode_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                               const std::map<std::string, std::string>& metadata) {
  // A result computed while a mapped checkpoint was cut short holds zeros: not sent.
  check_mapped_files_intact();
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name.empty() || name == "__metadata__" || header.contains(name))
      fail("encode_safetensors: empty, duplicate or reserved tensor name '", name, "'");
    if (!t.defined() || t.device() != Device::CPU || !t.is_contiguous())
      fail("encode_safetensors: tensor '", name, "' must be a defined, contiguous host tensor");
    header[name] = {{"dtype", dtype_name(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + json.size() + offset);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(uint64_t(json.size()) >> (8 * i)));
  out += json;
  for (const auto& [name, t] : tensors)
    if (t.nbytes()) out.append(static_cast<const char*>(t.raw()), t.nbytes());
  return out;
}

}  // namespace raylight::server
