// CLIP transformer hyper-parameters and tensor names (HF CLIPTextModel / CLIPVisionModel
// layout, as ComfyUI's clip_l.safetensors and clip_vision_h.safetensors store them), read off
// a checkpoint: files store no config, but every number is a tensor shape. The text and the
// vision tower share the layer layout
//   <prefix>encoder.layers.N.{self_attn.{q,k,v,out}_proj, layer_norm1, mlp.fc1, mlp.fc2, layer_norm2}
// and differ in their embeddings and norms. The prefix ("text_model." / "vision_model." under
// any outer prefix: all-in-one checkpoints, other tools' exports) is found from one anchor
// tensor, so other models' keys in the same file are never taken for CLIP's.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "parallel/weight_store.h"

namespace raylight {

enum class ClipTower { Text, Vision };

struct ClipConfig {
  ClipTower tower = ClipTower::Text;
  std::string prefix;  // up to and including "text_model." / "vision_model."
  int64_t width = 0, layers = 0, heads = 0, mlp = 0;
  int64_t positions = 0;  // text: context length (77); vision: patches + 1 (257)
  int64_t vocab = 0;      // text only
  int64_t patch = 0, image_size = 0, channels = 3;  // vision only
  int64_t projection = 0;  // vision: visual_projection's output width, 0 when absent
  std::string projection_name;  // full name of visual_projection.weight ("" when absent)
  float eps = 1e-5f;
  // The MLP's activation: x * sigmoid(1.702 x) (OpenAI's CLIP-L text tower) or erf GELU
  // (CLIP-G's text tower, the ViT vision towers).
  bool quick_gelu = false;

  int64_t head_dim() const { return heads > 0 ? width / heads : 0; }
  // "CLIP-L" / "CLIP ViT-H/14" for the real shapes, "CLIP text custom (width 64, 2 layers)" else.
  std::string variant() const;
  std::string layer(int64_t index, const std::string& rest) const;
  std::string name(const std::string& rest) const { return prefix + rest; }
};

// The real shapes (names under "text_model." / "vision_model."): OpenAI CLIP-L's text tower
// (12 x 768, 12 heads, 77 positions, vocab 49408, quick_gelu) and OpenCLIP ViT-H/14's vision
// tower (32 x 1280, 16 heads, patch 14 on 224 x 224), for benchmarks and GPU tests.
ClipConfig clip_l_text_config();
ClipConfig clip_vit_h_config();

// Every tensor a tower of this config holds, with its shape (visual_projection excluded:
// it is optional and unused by the encoders here).
std::vector<std::pair<std::string, Shape>> clip_expected_tensors(const ClipConfig& c);

bool looks_like_clip_text(const WeightStore& weights);
bool looks_like_clip_vision(const WeightStore& weights);

// Reads the config from tensor shapes and checks every expected tensor; errors name the
// first tensor that is missing or has the wrong shape. The head count is in no shape: it is
// the store's metadata "raylight.clip_heads" when present (tiny configs), else the known
// models' (ViT-H/14 vision 1280 -> 16 heads of 80, bigG 1664 -> 16), else heads of 64 (CLIP-L
// text 768 -> 12, CLIP-G text 1280 -> 20, ViT-L vision 1024 -> 16).
ClipConfig detect_clip_config(const WeightStore& weights, ClipTower tower);

}  // namespace raylight
