// Reading one LoRA file as ComfyUI users have them: each adapter is a key stem (the name of
// the layer it patches, in whatever style the trainer wrote) and its tensors, grouped by the
// suffixes ComfyUI's loader reads:
//   low rank  <stem>.lora_up.weight / .lora_down.weight (kohya, ComfyUI),
//             <stem>.lora_B.weight / .lora_A.weight (PEFT, diffusers), <stem>.lora.up.weight /
//             .lora.down.weight, <stem>_lora.up.weight / _lora.down.weight,
//             <stem>.lora_linear_layer.up.weight / .down.weight; optional <stem>.alpha
//   LoHa      <stem>.hada_w1_a, hada_w1_b, hada_w2_a, hada_w2_b (+ alpha)
//   LoKr      <stem>.lokr_w1 or lokr_w1_a/lokr_w1_b, lokr_w2 or lokr_w2_a/lokr_w2_b (+ alpha)
//   full      <stem>.diff (weight delta), <stem>.diff_b (bias delta), <stem>.set_weight
// Every tensor is read to fp32 and checked finite; a key with no known suffix is kept by
// name so the caller reports it. Forms ComfyUI uses only for convolutions (lora_mid,
// hada_t1, lokr_t2) and DoRA's dora_scale are refused by name: DiT LoRAs patch matrices.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace raylight {

enum class AdapterKind { LowRank, LoHa, LoKr, Diff, DiffBias, SetWeight };
const char* adapter_kind_name(AdapterKind kind);

struct LoraAdapter {
  std::string stem;  // as written in the file
  AdapterKind kind = AdapterKind::LowRank;
  // Role -> fp32 host tensor: "up", "down" (low rank); "w1_a", "w1_b", "w2_a", "w2_b" (LoHa);
  // "w1" or "w1_a"/"w1_b", "w2" or "w2_a"/"w2_b" (LoKr); "diff" (Diff, DiffBias, SetWeight).
  std::map<std::string, Tensor> parts;
  std::optional<double> alpha;
};

struct LoraFile {
  std::string path;
  std::vector<LoraAdapter> adapters;
  std::vector<std::string> unknown_keys;  // keys with no adapter suffix
};

// Reads and checks `path`; errors name the file and the key.
LoraFile read_lora_file(const std::string& path);

}  // namespace raylight
