// Small checks for JSON from untrusted sources (safetensors headers in files and in HTTP
// bodies), shared so both readers apply the same rules.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace raylight {

// Deepest {}/[] nesting outside strings, stopping early once past `limit`: checked before
// parsing so a hostile header cannot drive the parser's recursion.
int json_nesting_depth(std::string_view s, int limit);

// Parses `text` (nlohmann::json::exception when it is not JSON). Returns false and names the
// key in *duplicate when an object holds the same key twice: a plain parse would keep the
// last one silently, where the safetensors reference reader refuses the file.
bool json_parse_unique_keys(std::string_view text, nlohmann::json* out, std::string* duplicate);

// A non-negative JSON integer that fits in int64, or false.
bool json_as_count(const nlohmann::json& j, uint64_t* out);

// The little-endian u64 at p (the safetensors header length).
uint64_t read_le64(const uint8_t* p);

}  // namespace raylight
