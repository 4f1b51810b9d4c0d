// Files that clients name in requests (a model, a text encoder, a VAE, a tokenizer): the
// server opens them with its own rights, so a request is a way to make it read any file.
// Three rules keep that from leaking anything:
// - a path with a NUL byte is refused (the system would read the path up to the NUL: a
//   request for "/etc/passwd\0.safetensors" would open /etc/passwd);
// - with allowed folders (--models-dir), a path must lie inside one of them once symbolic
//   links are resolved;
// - a file that does not parse as safetensors is reported without anything read from it
//   (the parser's own messages quote header bytes: the first 8 bytes as a "header
//   length", JSON text near a syntax error), only with what the file system says.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/family.h"

namespace raylight::server {

// Checks a client-given path (`what` names the field in messages); "tiny" passes as it is.
// Throws an Error saying what is wrong.
void check_client_path(const std::string& what, const std::string& path, const std::vector<std::string>& allowed_dirs);

// Runs `open` (which reads `path`); an error it throws is replaced by one that names the
// file and what the file system says about it, never the file's contents.
void open_client_file(const std::string& what, const std::string& path, const std::function<void()>& open);

// open_store() for a client-named source: an embedded model by name, else the file, with
// check_client_path's rules (no allowed folders: those are checked on the request) and
// open_client_file's messages. Folders and sharded checkpoints' indexes are refused.
std::unique_ptr<WeightStore> open_client_store(const std::string& what, const std::string& source, PartKind part);

// Fails unless the client-named `source` (field `what`) is a part of kind `part` Raylight
// recognises (an embedded model's name passes).
void check_client_part(const std::string& what, const std::string& source, PartKind part);

}  // namespace raylight::server
