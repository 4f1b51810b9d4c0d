// PNG output: one file, a numbered sequence next to the path, or frames in a folder.
// Frames are encoded into a temporary folder first; only when every frame is done do they
// become visible:
//   - one frame at "out.png": the file output policy of io/output_file.h;
//   - "dir/": the staged folder replaces the folder as a whole (created with a rename, or
//     swapped with renameat2(RENAME_EXCHANGE), then the old one is removed), so a reader or a
//     second writer never sees frames of two runs mixed. An existing folder is replaced only
//     when it holds nothing but frame_NNNNN.png files (an earlier output); anything else in it
//     is the user's and the write is refused.
//   - "out.png" with several frames: out_NNNNN.png beside other files, so the frames are
//     renamed in one by one while an flock on the folder keeps a second writer out; then
//     leftovers of an earlier, longer output and the single-file form are removed.
#include <fcntl.h>
#include <png.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "io/output_file.h"
#include "io/safetensors.h"
#include "io/temporaries.h"
#include "io/video/codecs.h"
#include "io/video/png_naming.h"

namespace raylight::video {
namespace {

namespace fs = std::filesystem;

bool is_regular(const std::string& p) {
  std::error_code ec;
  return fs::is_regular_file(fs::symlink_status(p, ec));
}

// Removes numbered frames from `first` on while they exist (a leftover longer sequence).
void remove_numbered_from(const PngNaming& n, int64_t first) {
  for (int64_t i = first; is_regular(n.numbered(i)); ++i) std::remove(n.numbered(i).c_str());
}

std::string file_name(const std::string& p) { return p.substr(p.rfind('/') + 1); }

// An exclusive flock on a folder while this lives (writers of numbered frames take turns).
class FolderLock {
 public:
  explicit FolderLock(const std::string& dir) : fd_(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
    if (fd_ >= 0) while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {}
  }
  ~FolderLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  int fd_;
};

// True for "frame_" + digits + ".png": what the folder form writes.
bool is_frame_name(const std::string& name) {
  const std::string pre = "frame_", suf = ".png";
  if (name.size() <= pre.size() + suf.size() || name.compare(0, pre.size(), pre) != 0 ||
      name.compare(name.size() - suf.size(), suf.size(), suf) != 0)
    return false;
  const std::string digits = name.substr(pre.size(), name.size() - pre.size() - suf.size());
  return digits.find_first_not_of("0123456789") == std::string::npos;
}

// The first entry of folder `dir` that is not a regular frame file, or "". An entry that
// vanishes while the folder is read is not foreign: a concurrent writer swapped the folder
// away and is removing the old frames.
std::string foreign_entry(const std::string& dir) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!is_frame_name(name)) return name;
    const fs::file_status st = it->symlink_status(ec);
    if (ec == std::errc::no_such_file_or_directory) {
      ec.clear();
      continue;
    }
    if (ec || !fs::is_regular_file(st)) return name;
  }
  if (ec) return "(unreadable: " + ec.message() + ")";
  return "";
}

// Encodes every frame into the fresh folder `tmp` under the names `n` gives them.
void encode_frames(const RgbFrames& rgb, const PngNaming& n, const std::string& tmp) {
  std::error_code ec;
  fs::remove_all(tmp, ec);  // a leftover of a crashed process with our pid
  if (!fs::create_directory(tmp, ec) || ec)
    fail("cannot create temporary folder ", tmp, ": ",
         ec ? ec.message() : std::string("it already exists"));
  for (int64_t f = 0; f < rgb.frames; ++f) {
    const std::string staged = tmp + "/" + file_name(n.numbered(f));
    encode_png(rgb.frame(f), rgb.width, rgb.height, staged);
    sync_file(staged);
  }
  check_mapped_files_intact();
}

// The folder a "dir/" output goes to (a link's target), after checking that it may be
// replaced: absent in an existing folder, or a folder holding only frames.
std::string checked_png_folder(const PngNaming& n) {
  std::string dir = n.dir;
  struct stat st {};
  if (::lstat(dir.c_str(), &st) == 0) {
    if (S_ISLNK(st.st_mode)) {  // a link to a folder: the folder it points to is the output
      std::error_code ec;
      if (!fs::is_directory(dir, ec))
        fail("output ", dir, "/ is a symbolic link to something that is not a folder");
      dir = fs::canonical(dir, ec).string();
      if (ec) fail("cannot resolve the symbolic link ", n.dir, ": ", ec.message());
    } else if (!S_ISDIR(st.st_mode)) {
      fail("output ", n.dir, "/ is ", describe_file_type(st.st_mode), ", not a folder");
    }
    const std::string other = foreign_entry(dir);
    if (!other.empty())
      fail("output folder ", n.dir, "/ holds '", other, "', which is not a frame of an earlier "
           "output; give a new or empty folder (frames replace the folder as a whole)");
  } else if (errno != ENOENT) {
    fail("cannot check output ", n.dir, ": ", std::strerror(errno));
  } else if (!fs::is_directory(parent_dir(dir))) {
    fail("cannot write ", n.dir, "/: folder ", parent_dir(dir), " does not exist");
  }
  return dir;
}

// The "dir/" form: the folder is replaced as a whole.
void write_png_folder(const RgbFrames& rgb, const PngNaming& n) {
  const std::string dir = checked_png_folder(n);
  sweep_stale_temporaries(dir);
  TemporaryPath tmp(staging_path(dir));
  PngNaming staged = n;
  staged.prefix = tmp.path() + "/frame_";
  encode_frames(rgb, staged, tmp.path());
  if (rename_if_absent(tmp.path(), dir)) {  // a new folder appears complete
    tmp.release();
    sync_dir(parent_dir(dir));
    return;
  }
  if (::renameat2(AT_FDCWD, tmp.path().c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) {
    // tmp now holds the old folder. Something added to it since the check above is the
    // user's: swap back and refuse rather than delete it.
    const std::string other = foreign_entry(tmp.path());
    if (!other.empty()) {
      ::renameat2(AT_FDCWD, tmp.path().c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE);
      fail("output folder ", n.dir, "/ gained '", other, "' while frames were written; left as it was");
    }
    sync_dir(parent_dir(dir));
    return;  // tmp (the old frames) is removed by its owner
  }
  if (errno != EINVAL && errno != ENOSYS)
    fail("cannot swap ", tmp.path(), " with ", dir, ": ", std::strerror(errno));
  // No RENAME_EXCHANGE on this file system: frames are renamed in one by one, in turn with
  // other writers, and leftovers of a longer earlier output removed.
  FolderLock lock(dir);
  for (int64_t f = 0; f < rgb.frames; ++f)
    rename_or_fail(tmp.path() + "/" + file_name(n.numbered(f)), dir + "/" + file_name(n.numbered(f)));
  sync_dir(dir);
  PngNaming in_dir = n;
  in_dir.prefix = dir + "/frame_";
  remove_numbered_from(in_dir, rgb.frames);
}

// The "out.png" form with several frames: out_NNNNN.png next to other files.
void write_png_sequence(const RgbFrames& rgb, const PngNaming& n) {
  check_output_file(n.numbered(0));  // the folder exists and frame 0 may be written
  sweep_stale_temporaries(n.single);
  TemporaryPath tmp(staging_path(n.single));
  encode_frames(rgb, n, tmp.path());
  FolderLock lock(parent_dir(n.single));
  // Check every target first so that a blocked name fails before anything is replaced.
  for (int64_t f = 0; f < rgb.frames; ++f) {
    struct stat st {};
    if (::lstat(n.numbered(f).c_str(), &st) == 0 && !S_ISREG(st.st_mode))
      fail("cannot replace ", n.numbered(f), ": it is ", describe_file_type(st.st_mode));
  }
  for (int64_t f = 0; f < rgb.frames; ++f)
    rename_or_fail(tmp.path() + "/" + file_name(n.numbered(f)), n.numbered(f));
  sync_dir(parent_dir(n.numbered(0)));
  remove_numbered_from(n, rgb.frames);
  if (is_regular(n.single)) std::remove(n.single.c_str());
}

}  // namespace

void encode_png(const uint8_t* rgb, int64_t width, int64_t height, const std::string& file) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = PNG_FORMAT_RGB;
  const int ok = png_image_write_to_file(&image, file.c_str(), 0, rgb,
                                         static_cast<png_int_32>(width * 3), nullptr);
  const std::string message = image.message;
  png_image_free(&image);
  if (!ok) fail("libpng cannot write ", file, ": ", message);
}

void check_png_output(const std::string& path) {
  const PngNaming n = png_naming(path);
  if (n.directory) {
    checked_png_folder(n);
    return;
  }
  // One frame goes to `path` itself, several to its numbered siblings: only the folder is
  // known to be needed before the frame count is.
  const std::string dir = parent_dir(path);
  if (!fs::is_directory(dir)) fail("cannot write ", path, ": folder ", dir, " does not exist");
}

void write_png_output(const RgbFrames& rgb, const std::string& path) {
  const PngNaming n = png_naming(path);
  if (n.directory) return write_png_folder(rgb, n);
  if (rgb.frames > 1) return write_png_sequence(rgb, n);
  write_output_file(path, [&](const std::string& tmp) {
    encode_png(rgb.frame(0), rgb.width, rgb.height, tmp);
  });
  FolderLock lock(parent_dir(path));
  remove_numbered_from(n, 0);  // the sequence form of an earlier output
}

}  // namespace raylight::video
