#include "io/safetensors_index.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json_checks.h"

namespace raylight {
namespace {

namespace fs = std::filesystem;

constexpr uintmax_t kMaxIndexBytes = 64u << 20;  // Flux's is 120 KiB; a 64 MiB index is not one
constexpr int kMaxDepth = 8;

bool ends_with(const std::string& s, const std::string& x) {
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

// Why `file` (a weight_map value) cannot be a shard beside the index, or "".
std::string bad_shard_name(const std::string& file) {
  if (file.empty()) return "is empty";
  if (file.find('/') != std::string::npos || file.find('\\') != std::string::npos)
    return "is a path, not a file name beside the index";
  if (file.front() == '.') return "starts with '.' (a hidden file or a way out of the folder)";
  for (unsigned char c : file)
    if (c < 0x20 || c == 0x7f) return "holds a control character";
  if (!ends_with(file, ".safetensors")) return "is not a .safetensors file";
  return "";
}

}  // namespace

bool is_safetensors_index_name(const std::string& path) {
  const std::string name = fs::path(path).filename().string();
  const size_t at = name.find(".safetensors.index.");
  return at != std::string::npos && ends_with(name, ".json");
}

SafetensorsIndex read_safetensors_index(const std::string& path) {
  SafetensorsIndex index;
  index.path = path;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) fail("safetensors index ", path, " is not a regular file");
  const uintmax_t size = fs::file_size(path, ec);
  if (ec || size > kMaxIndexBytes) fail("safetensors index ", path, " is larger than 64 MiB (not an index?)");
  std::ifstream in(path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in && !in.eof()) fail("safetensors index ", path, " cannot be read");
  if (json_nesting_depth(text, kMaxDepth) > kMaxDepth)
    fail("safetensors index ", path, ": nested deeper than ", kMaxDepth, " levels");
  nlohmann::json j;
  std::string duplicate;
  try {
    if (!json_parse_unique_keys(text, &j, &duplicate))
      fail("safetensors index ", path, " names '", duplicate, "' twice");
  } catch (const nlohmann::json::exception& e) {
    fail("safetensors index ", path, " is not valid JSON: ", e.what());
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    fail("safetensors index ", path, " has no \"weight_map\" object");
  index.folder = fs::path(path).parent_path().string();
  if (index.folder.empty()) index.folder = ".";
  std::set<std::string> files;
  for (const auto& [tensor, file] : j["weight_map"].items()) {
    if (tensor.empty()) fail("safetensors index ", path, " maps an empty tensor name");
    if (!file.is_string()) fail("safetensors index ", path, ": the file of tensor ", tensor, " is not a string");
    const std::string name = file.get<std::string>();
    const std::string why = bad_shard_name(name);
    if (!why.empty()) fail("safetensors index ", path, ": the file \"", name, "\" of tensor ", tensor, " ", why);
    const std::string shard = (fs::path(index.folder) / name).string();
    files.insert(shard);
    index.weight_map.emplace(tensor, shard);
  }
  if (index.weight_map.empty()) fail("safetensors index ", path, " maps no tensors");
  index.files.assign(files.begin(), files.end());
  for (const auto& f : index.files)
    if (!fs::is_regular_file(f, ec)) fail("safetensors index ", path, " names shard ", f, ", which is missing or not a regular file");
  return index;
}

}  // namespace raylight
