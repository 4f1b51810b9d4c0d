// Tests for the safetensors reader/writer. Files are built byte by byte (header JSON
// written by hand) so each malformed case is exactly the one named, and a fixed-seed fuzz
// loop checks that no corruption of the header can crash the reader or slip past it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;
using namespace raylight;

namespace {

struct TempDir {
  fs::path dir;
  TempDir() {
    static int counter = 0;
    std::random_device rd;
    dir = fs::temp_directory_path() /
          ("raylight-st-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
           std::to_string(rd()));
    fs::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string file(const std::string& name) const { return (dir / name).string(); }
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

// A raw file: length prefix, header text, `data_bytes` zero bytes of data.
std::string raw_file(const std::string& header, size_t data_bytes) {
  return le64(header.size()) + header + std::string(data_bytes, '\0');
}

// A tensor of `dtype` whose bytes are a recognisable pattern.
Tensor patterned(Shape shape, DType dtype, uint8_t seed) {
  Tensor t = Tensor::empty(std::move(shape), dtype);
  auto* p = static_cast<uint8_t*>(t.raw());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(seed + 7 * i);
  return t;
}

std::vector<std::pair<std::string, Tensor>> sample_tensors() {
  return {{"a.f32", patterned({2, 3}, DType::F32, 1)},
          {"b.bf16", patterned({4}, DType::BF16, 2)},
          {"c.f16", patterned({3, 1}, DType::F16, 3)},
          {"d.f8", patterned({5}, DType::F8E4M3, 4)},
          {"d.f8e5", patterned({2, 2}, DType::F8E5M2, 5)},
          {"e.u8", patterned({7}, DType::U8, 6)},
          {"f.i64", patterned({2}, DType::I64, 7)},
          {"g.scalar", patterned({}, DType::F32, 8)},
          {"h.empty", patterned({0, 3}, DType::F32, 9)}};
}

std::string error_of(const std::string& path) {
  try {
    SafetensorsFile::open(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "<opened without error>";
}

}  // namespace

TEST(Safetensors, RoundTripAllDtypes) {
  TempDir tmp;
  const std::string path = tmp.file("model.safetensors");
  auto tensors = sample_tensors();
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "h\u00e9llo \"q\""}};
  write_safetensors(path, tensors, meta);

  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->path(), path);
  EXPECT_EQ(f->metadata(), meta);
  EXPECT_EQ(f->file_size(), fs::file_size(path));
  EXPECT_EQ(f->data_offset() % 8, 0u);
  ASSERT_EQ(f->tensors().size(), tensors.size());
  for (size_t i = 1; i < f->tensors().size(); ++i)
    EXPECT_LE(f->tensors()[i - 1].begin, f->tensors()[i].begin);
  for (const auto& [name, want] : tensors) {
    ASSERT_TRUE(f->has(name)) << name;
    Tensor got = f->tensor(name);
    EXPECT_EQ(got.dtype(), want.dtype()) << name;
    EXPECT_EQ(got.shape(), want.shape()) << name;
    ASSERT_EQ(got.nbytes(), want.nbytes()) << name;
    EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.nbytes()), 0) << name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(got.raw()) % dtype_size(got.dtype()), 0u) << name;
    EXPECT_EQ(f->info(name).end - f->info(name).begin, want.nbytes());
  }
  EXPECT_FALSE(f->has("missing"));
}

TEST(Safetensors, ZeroCopyViewsPointIntoMapping) {
  TempDir tmp;
  const std::string path = tmp.file("zc.safetensors");
  write_safetensors(path, sample_tensors());
  const std::string bytes = read_bytes(path);
  auto f = SafetensorsFile::open(path);
  const TensorInfo& first = f->tensors().front();
  auto* base = static_cast<const char*>(f->tensor(first.name).raw()) - f->data_offset() - first.begin;
  for (const TensorInfo& t : f->tensors()) {
    auto* p = static_cast<const char*>(f->tensor(t.name).raw());
    // Address differences equal offset differences: one mapping, no copies.
    EXPECT_EQ(p - base, static_cast<ptrdiff_t>(f->data_offset() + t.begin)) << t.name;
    EXPECT_GE(p, base);
    EXPECT_LE(p + (t.end - t.begin), base + f->file_size());
    if (t.end > t.begin) {
      EXPECT_LT(p, base + f->file_size());
      EXPECT_EQ(std::memcmp(p, bytes.data() + f->data_offset() + t.begin, t.end - t.begin), 0);
    }
  }
}

TEST(Safetensors, ViewOutlivesFileHandle) {
  TempDir tmp;
  const std::string path = tmp.file("keep.safetensors");
  Tensor want = patterned({16, 4}, DType::F32, 42);
  write_safetensors(path, {{"w", want}});
  auto f = SafetensorsFile::open(path);
  std::weak_ptr<SafetensorsFile> weak = f;
  Tensor view = f->tensor("w");
  f.reset();
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ(std::memcmp(view.raw(), want.raw(), want.nbytes()), 0);
  Tensor copy = view.to_f32();
  EXPECT_EQ(std::memcmp(copy.raw(), want.raw(), want.nbytes()), 0);
  view = Tensor();
  copy = Tensor();
  EXPECT_TRUE(weak.expired());  // last view gone: file object destroyed, mapping released
}

namespace {
// This process's resident pages (/proc/self/statm, second field), in bytes.
size_t resident_bytes() {
  std::ifstream in("/proc/self/statm");
  size_t total = 0, resident = 0;
  in >> total >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}
}  // namespace

TEST(Safetensors, ReleasedPagesLeaveTheProcessAndReadBackIntact) {
  TempDir tmp;
  const std::string path = tmp.file("big.safetensors");
  Tensor want = patterned({48 << 18}, DType::F32, 7);  // 48 MiB
  write_safetensors(path, {{"w", want}});
  auto f = SafetensorsFile::open(path);
  Tensor view = f->tensor("w");
  double sum = 0;  // touch every page of the mapping
  for (int64_t i = 0; i < view.numel(); i += 1024) sum += view.f32()[i];
  const size_t touched = resident_bytes();
  f->release_pages(view.raw(), view.nbytes());
  const size_t released = resident_bytes();
  EXPECT_GT(touched, released + (32u << 20)) << "resident " << touched << " -> " << released << " (sum " << sum << ")";
  EXPECT_EQ(std::memcmp(view.raw(), want.raw(), want.nbytes()), 0);  // faulted back from the file
  // Memory outside the mapping is left alone.
  std::vector<float> heap(1 << 20, 3.0f);
  f->release_pages(heap.data(), heap.size() * sizeof(float));
  EXPECT_EQ(heap[12345], 3.0f);
}

TEST(Safetensors, EmptyDataRegionAndMetadataOnly) {
  TempDir tmp;
  const std::string path = tmp.file("empty.safetensors");
  write_safetensors(path, {}, {{"k", "v"}});
  auto f = SafetensorsFile::open(path);
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_EQ(f->metadata().at("k"), "v");
  EXPECT_EQ(f->file_size(), f->data_offset());

  write_safetensors(path, {{"z", Tensor::empty({0}, DType::BF16)}});
  f = SafetensorsFile::open(path);
  EXPECT_EQ(f->file_size(), f->data_offset());
  EXPECT_EQ(f->tensor("z").numel(), 0);
}

TEST(Safetensors, MissingTensorAndMissingFile) {
  TempDir tmp;
  const std::string path = tmp.file("m.safetensors");
  write_safetensors(path, {{"w", patterned({2}, DType::F32, 1)}});
  auto f = SafetensorsFile::open(path);
  try {
    f->info("nope.weight");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("nope.weight"), std::string::npos);
  }
  EXPECT_THROW(f->tensor("nope"), Error);
  std::string msg = error_of(tmp.file("absent.safetensors"));
  EXPECT_NE(msg.find("absent.safetensors"), std::string::npos) << msg;
  msg = error_of(tmp.dir.string());
  EXPECT_NE(msg.find("not a regular file"), std::string::npos) << msg;
}

TEST(Safetensors, MalformedHeadersNameFileAndTensor) {
  struct Case {
    std::string bytes;
    std::vector<std::string> expect;  // substrings of what(), besides the path
  };
  auto one = [](const std::string& entry, size_t data = 64) {
    return raw_file("{\"blk.w\":" + entry + "}", data);
  };
  const std::string ok = R"("dtype":"F32","shape":[2],"data_offsets":[0,8])";
  std::vector<Case> cases = {
      {"abc", {"shorter than the 8-byte"}},
      {le64(0) + "{}", {"header length is 0"}},
      {le64((100ull << 20) + 1) + "{}", {"100 MiB"}},
      {le64(100) + "{}", {"past the end", "truncated"}},
      {raw_file("{\"a\": ", 0), {"invalid JSON", "parse error"}},
      {raw_file("[1,2]", 0), {"not a JSON object"}},
      {raw_file(std::string(5000, '[') + std::string(5000, ']'), 0), {"nested"}},
      {one("3"), {"blk.w", "not an object"}},
      {one(R"({"shape":[2],"data_offsets":[0,8]})"), {"blk.w", "dtype"}},
      {one(R"({"dtype":5,"shape":[2],"data_offsets":[0,8]})"), {"blk.w", "dtype"}},
      {one(R"({"dtype":"F32","data_offsets":[0,8]})"), {"blk.w", "shape"}},
      {one(R"({"dtype":"F32","shape":2,"data_offsets":[0,8]})"), {"blk.w", "shape"}},
      {one(R"({"dtype":"F32","shape":[2]})"), {"blk.w", "data_offsets"}},
      {one("{" + ok + R"(,"extra":1})"), {"blk.w", "unexpected field 'extra'"}},
      {one(R"({"dtype":"Q4_K","shape":[2],"data_offsets":[0,8]})"), {"blk.w", "unknown dtype 'Q4_K'"}},
      {one(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"), {"blk.w", "negative"}},
      {one(R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,8]})"), {"blk.w", "non-integer"}},
      {one(R"({"dtype":"F32","shape":["2"],"data_offsets":[0,8]})"), {"blk.w", "non-integer"}},
      {one(R"({"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,8]})"),
       {"blk.w", "too large"}},
      {one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8,16]})"), {"blk.w", "data_offsets"}},
      {one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8.0]})"), {"blk.w", "data_offsets"}},
      {one(R"({"dtype":"F32","shape":[2],"data_offsets":[-8,0]})"), {"blk.w", "data_offsets"}},
      {one(R"({"dtype":"F32","shape":[2],"data_offsets":"0,8"})"), {"blk.w", "data_offsets"}},
      {one(R"({"dtype":"F32","shape":[0],"data_offsets":[8,0]})"), {"blk.w", "begin 8 > end 0"}},
      {one("{" + ok + "}", 4), {"blk.w", "truncated", "expected at least", "actual"}},
      {one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,12]})"), {"blk.w", "needs 8"}},
      {raw_file(R"({"blk.a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("blk.b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 16),
       {"blk.a", "blk.b", "overlap"}},
      {raw_file(R"({"__metadata__":{"k":1}})", 0), {"__metadata__", "'k'", "not a string"}},
      {raw_file(R"({"__metadata__":[]})", 0), {"__metadata__", "not an object"}},
  };
  TempDir tmp;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = tmp.file("bad" + std::to_string(i) + ".safetensors");
    write_bytes(path, cases[i].bytes);
    std::string msg = error_of(path);
    EXPECT_NE(msg.find(path), std::string::npos) << "case " << i << ": " << msg;
    for (const std::string& s : cases[i].expect)
      EXPECT_NE(msg.find(s), std::string::npos) << "case " << i << " wants '" << s << "': " << msg;
  }
}

TEST(Safetensors, TruncatedCopiesAlwaysError) {
  TempDir tmp;
  const std::string path = tmp.file("full.safetensors");
  write_safetensors(path, sample_tensors(), {{"format", "pt"}});
  const std::string bytes = read_bytes(path);
  for (size_t n = 0; n < bytes.size(); ++n) {
    // A fresh name each time: rewriting one file makes ext4 flush it on every close.
    const std::string cut = tmp.file("cut" + std::to_string(n) + ".safetensors");
    write_bytes(cut, bytes.substr(0, n));
    std::string msg = error_of(cut);
    EXPECT_NE(msg.find("truncated"), std::string::npos) << "cut at " << n << ": " << msg;
    EXPECT_NE(msg.find(cut), std::string::npos) << msg;
    fs::remove(cut);
  }
  EXPECT_NO_THROW(SafetensorsFile::open(path));
}

TEST(Safetensors, FuzzedHeadersNeverCrash) {
  TempDir tmp;
  const std::string path = tmp.file("seed.safetensors");
  write_safetensors(path, sample_tensors(), {{"format", "pt"}});
  const std::string good = read_bytes(path);
  const size_t header_end = SafetensorsFile::open(path)->data_offset();
  const std::string alphabet = "{}[]\":,-.e0123456789 FBU8_E4M3shapedtypeoffsets";
  std::mt19937 rng(12345);
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  int opened = 0, rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string b = good;
    size_t hdr = header_end;  // mutations stay within the length field and header
    for (int m = 0, nm = 1 + static_cast<int>(pick(4)); m < nm && !b.empty(); ++m) {
      hdr = std::max<size_t>(1, std::min(hdr, b.size()));
      switch (pick(10)) {
        case 0: b[pick(hdr)] ^= static_cast<char>(1 << pick(8)); break;
        case 1: b[pick(hdr)] = static_cast<char>(pick(256)); break;
        case 2: case 3: case 4:
          if (hdr > 8) b[8 + pick(hdr - 8)] = alphabet[pick(alphabet.size())];
          break;
        case 5: b.insert(b.begin() + static_cast<long>(pick(hdr + 1)),
                         pick(2) ? alphabet[pick(alphabet.size())] : static_cast<char>(pick(256)));
                ++hdr; break;
        case 6: case 7: b.erase(pick(hdr), 1); --hdr; break;
        case 8: b[pick(std::min<size_t>(8, b.size()))] = static_cast<char>(pick(256)); break;  // length
        case 9: b.resize(pick(b.size() + 1)); break;
      }
    }
    // Half the time keep the length field consistent so the JSON and offsets get exercised.
    if (pick(2) && hdr > 8 && b.size() >= hdr) b.replace(0, 8, le64(hdr - 8));
    const std::string fuzz = tmp.file("fuzz" + std::to_string(iter) + ".safetensors");
    write_bytes(fuzz, b);
    struct Remove { std::string p; ~Remove() { std::remove(p.c_str()); } } remove_after{fuzz};
    try {
      auto f = SafetensorsFile::open(fuzz);
      ++opened;
      ASSERT_EQ(f->file_size(), b.size());
      uint64_t sum = 0;
      for (const TensorInfo& t : f->tensors()) {
        ASSERT_LE(t.begin, t.end);
        ASSERT_LE(f->data_offset() + t.end, f->file_size()) << "iter " << iter << " " << t.name;
        Tensor v = f->tensor(t.name);
        ASSERT_EQ(v.nbytes(), t.end - t.begin);
        auto* p = static_cast<const uint8_t*>(v.raw());
        for (size_t i = 0; i < v.nbytes(); ++i) sum += p[i];  // touches every byte
      }
      (void)sum;
    } catch (const Error& e) {
      ++rejected;
      ASSERT_NE(std::string(e.what()).find(fuzz), std::string::npos) << e.what();
    } catch (const std::exception& e) {
      FAIL() << "iter " << iter << ": non-raylight exception: " << e.what();
    } catch (...) {
      FAIL() << "iter " << iter << ": unknown exception";
    }
  }
  std::printf("fuzz: %d opened, %d rejected\n", opened, rejected);
  EXPECT_GT(opened, 0);
  EXPECT_GT(rejected, 0);
}

TEST(Safetensors, WriterLeavesNoTempFiles) {
  TempDir tmp;
  const std::string path = tmp.file("out.safetensors");
  write_safetensors(path, sample_tensors());
  write_safetensors(path, sample_tensors());  // overwrite in place
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(tmp.dir)) names.push_back(e.path().filename());
  EXPECT_EQ(names, std::vector<std::string>{"out.safetensors"});

  // Missing directory: error, nothing created.
  const fs::path missing = tmp.dir / "no" / "such" / "dir";
  EXPECT_THROW(write_safetensors((missing / "x.safetensors").string(), sample_tensors()), Error);
  EXPECT_FALSE(fs::exists(tmp.dir / "no"));

  // Rename onto a directory fails after the temp file was written: it must be removed.
  fs::create_directory(tmp.dir / "isdir");
  try {
    write_safetensors(tmp.file("isdir"), sample_tensors());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("isdir"), std::string::npos) << e.what();
  }
  // Bad input (duplicate names): error before anything is written.
  auto dup = sample_tensors();
  dup.push_back(dup.front());
  EXPECT_THROW(write_safetensors(tmp.file("dup.safetensors"), dup), Error);

  names.clear();
  for (const auto& e : fs::directory_iterator(tmp.dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"isdir", "out.safetensors"}));
  EXPECT_TRUE(fs::is_empty(tmp.dir / "isdir"));
}
