// raylight inspect FILE: what a checkpoint is, read from its header alone (no tensor data
// is touched, so it is instant even for a 28 GB file). The registry names the family, the
// part and the variant; where tensors cannot tell variants apart it says what decided.
#include <cstdio>
#include <filesystem>
#include <map>

#include "commands.h"
#include "core/error.h"
#include "models/registry.h"
#include "options.h"
#include "io/diffusers_folder.h"
#include "io/safetensors_index.h"
#include "parallel/checkpoint_weights.h"

namespace raylight::cli {

static std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) { b /= 1024; ++u; }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f %s", b, units[u]);
  return buf;
}

// A model folder or a sharded checkpoint's index: the model its files make together, as the
// loader sees it (scale tensors hidden, diffusers names as written).
static int inspect_files(const std::string& path, const std::string& variant) {
  const WeightFiles files = find_weight_files(path);
  const auto store = open_store(path, PartKind::Denoiser);
  uint64_t size = 0;
  size_t shards = 1;
  if (files.sharded) {
    const SafetensorsIndex index = read_safetensors_index(files.weights);
    shards = index.files.size();
    for (const auto& f : index.files) size += std::filesystem::file_size(f);
  } else {
    size = std::filesystem::file_size(files.weights);
  }
  std::printf("file:        %s (%zu shard%s, %s)\n", files.weights.c_str(), shards, shards == 1 ? "" : "s",
              human_bytes(static_cast<double>(size)).c_str());
  if (!files.config.empty()) std::printf("config:      %s\n", files.config.c_str());
  if (auto r = recognise(*store, path, variant)) {
    std::printf("family:      %s %s\n", r->family.c_str(), part_kind_name(r->part));
    std::printf("variant:     %s\n", r->variant.c_str());
    if (!r->summary.empty()) std::printf("shape:       %s\n", r->summary.c_str());
    if (!r->note.empty()) std::printf("note:        %s\n", r->note.c_str());
  } else {
    std::printf("family:      none recognised (this build knows %s)\n", family_list().c_str());
  }
  std::map<std::string, std::pair<int64_t, uint64_t>> by_dtype;
  int64_t params = 0;
  for (const auto& name : store->names()) {
    const Shape shape = store->shape(name);
    auto& d = by_dtype[dtype_name(store->stored_dtype(name))];
    d.first++;
    d.second += shape_nbytes(shape, store->stored_dtype(name));
    params += shape_numel(shape);
  }
  std::printf("parameters:  %lld (%.3f B, %.2f M)\n", (long long)params, params / 1e9, params / 1e6);
  std::printf("dtypes:\n");
  for (const auto& [name, d] : by_dtype)
    std::printf("  %-8s %6lld tensors  %s\n", name.c_str(), (long long)d.first,
                human_bytes(static_cast<double>(d.second)).c_str());
  return 0;
}

int run_inspect(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      std::puts("usage: raylight inspect FILE [--variant NAME]   (a .safetensors checkpoint, a sharded checkpoint's\n"
                "       .safetensors.index.json, or a diffusers model folder)");
      return 0;
    }
  Options opt(args, {"variant"}, {}, 1);
  if (opt.positional().size() != 1) fail("inspect takes exactly one file, got ", opt.positional().size());
  const std::string path = opt.positional()[0];
  if (!std::filesystem::exists(path)) fail("file ", path, " does not exist");
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec) || is_safetensors_index_name(path))
    return inspect_files(path, opt.str("variant", ""));
  CheckpointWeights w(Checkpoint::open(path));
  const Checkpoint& ck = w.checkpoint();

  std::map<std::string, std::pair<int64_t, uint64_t>> by_dtype;  // tensors, bytes
  std::map<std::string, int64_t> groups;
  int64_t params = 0;
  for (const auto& name : ck.names()) {
    const TensorInfo& info = ck.info(name);
    auto& d = by_dtype[dtype_name(info.dtype)];
    d.first++;
    d.second += info.end - info.begin;
    params += shape_numel(info.shape);
    groups[name.substr(0, name.find('.'))]++;
  }
  std::printf("file:        %s (%s)\n", path.c_str(), human_bytes(ck.file().file_size()).c_str());
  if (auto r = recognise(w, path, opt.str("variant", ""))) {
    std::printf("family:      %s %s\n", r->family.c_str(), part_kind_name(r->part));
    std::printf("variant:     %s\n", r->variant.c_str());
    if (!r->summary.empty()) std::printf("shape:       %s\n", r->summary.c_str());
    if (!r->note.empty()) std::printf("note:        %s\n", r->note.c_str());
    // An all-in-one checkpoint: the parts it holds beside the DiT, each checked as its file would be.
    if (r->part == PartKind::Denoiser)
      for (const PartSlot& slot : denoiser_spec(w, path, opt.str("variant", ""))->parts())
        if (const auto prefix = checkpoint_part_prefix(path, slot)) {
          const auto part = recognise(*open_part(path, slot), path);
          std::printf("holds:       %s under %s: %s\n", slot.what.c_str(), prefix->c_str(),
                      part ? part->variant.c_str() : "not a part this build knows");
        }
  } else {
    std::printf("family:      none recognised (this build knows %s)\n", family_list().c_str());
  }
  std::printf("parameters:  %lld (%.3f B, %.2f M)\n", (long long)params, params / 1e9, params / 1e6);
  std::printf("key prefix:  %s\n", ck.prefix().empty() ? "(none)" : ck.prefix().c_str());
  std::printf("scaled fp8:  %s\n", ck.scaled_fp8() ? "yes (ComfyUI scale_weight)" : "no");
  std::printf("dtypes:\n");
  for (const auto& [name, d] : by_dtype)
    std::printf("  %-8s %6lld tensors  %s\n", name.c_str(), (long long)d.first,
                human_bytes(static_cast<double>(d.second)).c_str());
  std::printf("keys:\n");
  for (const auto& [g, n] : groups) std::printf("  %-20s %lld tensors\n", g.c_str(), (long long)n);
  return 0;
}

}  // namespace raylight::cli
