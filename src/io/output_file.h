// Where an output file may be written, decided in one place for every writer (safetensors,
// MP4, WebP, PNG), and the staged commit that never leaves anything half written.
//
// Policy for the path a user names (`--out X`), by what X is now:
//   absent            created: staged as "X.tmp-<pid>" next to it, fsynced, renamed into place
//                     with RENAME_NOREPLACE (something that appeared meanwhile is not replaced)
//   regular file      replaced the same way (rename is atomic: readers see old or new)
//   symbolic link     followed: the file it points to is written by these same rules and
//                     the link stays; a link to nothing is refused (as GNU cp does)
//   FIFO or pipe      written through: the output is staged in the temporary folder, then
//                     copied into the pipe (this is what `--out >(consumer)` or a named pipe
//                     means); with no reader at the other end it is an Error, not a hang
//   directory, character or block device, socket
//                     refused with an Error naming what X is: renaming a file over /dev/null
//                     as root would replace the system's /dev/null
// Nothing is ever renamed over a non-regular file: X is checked again right before the rename.
#pragma once

#include <functional>
#include <string>

namespace raylight {

enum class OutputKind { Absent, Regular, Pipe };

struct OutputFile {
  std::string path;  // where the bytes go: a symlink's target, else the path as given
  OutputKind kind = OutputKind::Absent;
};

// Applies the policy above without writing anything; an Error names the path and the reason.
// Commands call it before any long work, so a bad --out fails in a second, not after sampling.
OutputFile check_output_file(const std::string& path);

// Calls encode(tmp), which must write a complete file at `tmp`, then commits it to `path` by
// the policy above. Stale "<path>.tmp-<pid>" of dead processes are swept first. On any
// exception the temporary is removed and the exception propagates.
void write_output_file(const std::string& path,
                       const std::function<void(const std::string& tmp)>& encode);

// Flushes the file `path` to disk (Error on failure).
void sync_file(const std::string& path);
// Best effort: makes renames inside directory `dir` durable.
void sync_dir(const std::string& dir);
// The directory holding `path` ("." when it has no '/').
std::string parent_dir(const std::string& path);
// rename(2) with an Error naming both paths.
void rename_or_fail(const std::string& from, const std::string& to);
// Renames `from` to `to` only if nothing exists at `to` (RENAME_NOREPLACE); false when
// something does; an Error for any other failure.
bool rename_if_absent(const std::string& from, const std::string& to);
// "a folder", "a character device", ... for messages; "" for a regular file.
std::string describe_file_type(unsigned mode);

}  // namespace raylight
