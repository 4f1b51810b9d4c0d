// Client-named files (see client_files.h).
#include "server/client_files.h"

#include <unistd.h>

#include <filesystem>
#include <optional>

#include "core/error.h"
#include "io/safetensors_index.h"
#include "models/registry.h"

namespace raylight::server {

namespace fs = std::filesystem;

namespace {

bool inside(const fs::path& file, const fs::path& dir) {
  auto f = file.begin(), d = dir.begin();
  for (; d != dir.end(); ++d, ++f) {
    if (d->empty()) continue;  // a trailing separator
    if (f == file.end() || *f != *d) return false;
  }
  return true;
}

}  // namespace

void check_client_path(const std::string& what, const std::string& path, const std::vector<std::string>& allowed_dirs) {
  if (path == "tiny") return;
  if (path.find('\0') != std::string::npos) fail("\"", what, "\" path contains a NUL byte");
  if (path.empty()) fail("\"", what, "\" path is empty");
  if (allowed_dirs.empty()) return;
  std::error_code ec;
  const fs::path resolved = fs::weakly_canonical(fs::absolute(path, ec), ec);
  if (!ec) {
    for (const std::string& dir : allowed_dirs) {
      std::error_code dec;
      const fs::path root = fs::weakly_canonical(fs::absolute(dir, dec), dec);
      if (!dec && inside(resolved, root)) return;
    }
  }
  std::string dirs;
  for (const std::string& d : allowed_dirs) dirs += (dirs.empty() ? "" : ", ") + d;
  fail("\"", what, "\" file ", path, " is outside the folders this server reads models from (", dirs, ")");
}

void open_client_file(const std::string& what, const std::string& path, const std::function<void()>& open) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) fail(what, " file ", path, " does not exist or is not a file");
  if (::access(path.c_str(), R_OK) != 0) fail(what, " file ", path, " is not readable by the server");
  try {
    open();
  } catch (const std::exception&) {
    const auto size = fs::file_size(path, ec);
    fail(what, " file ", path, " (", ec ? std::string("?") : std::to_string(size),
         " bytes) is not a safetensors file the server can read; its contents are not shown here "
         "(`raylight inspect` on the server shows why)");
  }
}

std::unique_ptr<WeightStore> open_client_store(const std::string& what, const std::string& source, PartKind part) {
  if (is_embedded_model(source)) return open_store(source, part);
  check_client_path(what, source, {});
  // An index names shards beside it that the request's folder check never saw (a shard may
  // be a link to anywhere): sharded models are the server's own --model only.
  if (is_safetensors_index_name(source))
    fail("\"", what, "\" file ", source, " is a sharded checkpoint's index; the server opens those only as its --model");
  std::unique_ptr<WeightStore> store;
  open_client_file(what, source, [&] { store = open_store(source, part); });
  return store;
}

void check_client_part(const std::string& what, const std::string& source, PartKind part) {
  if (is_embedded_model(source)) return;
  const std::optional<Recognition> got = recognise(*open_client_store(what, source, part), source);
  if (!got)
    fail("\"", what, "\" file ", source, " is a safetensors file, but not a ", part_kind_name(part), " Raylight knows");
  if (got->part != part)
    fail("\"", what, "\" file ", source, " is a ", part_kind_name(got->part), " (", got->variant, "), not a ",
         part_kind_name(part));
}

}  // namespace raylight::server
