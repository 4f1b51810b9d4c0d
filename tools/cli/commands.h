// The raylight subcommands. Each takes its arguments (after the subcommand name) and
// returns the process exit code; errors are thrown as raylight::Error.
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/family.h"

namespace raylight::cli {

int run_sample(const std::vector<std::string>& args);
int run_generate(const std::vector<std::string>& args);
int run_forward(const std::vector<std::string>& args);
int run_inspect(const std::vector<std::string>& args);
int run_bench(const std::vector<std::string>& args);
int run_serve(const std::vector<std::string>& args);

// Reads one tensor from a safetensors file as fp32; the error names file and tensor. Integer
// dtypes, empty tensors and non-finite values are refused.
Tensor read_input_tensor(const std::string& path, const std::string& name, bool required = true);
// Error unless `path` is an existing regular file ("<what> <path> does not exist", ...).
void check_input_file(const std::string& path, const std::string& what);

// The family's conditioning inputs found in a safetensors file: the per-prompt ones (the
// required ones must be there) and/or the shared ones (image-to-video's clip_fea, y, ...).
Conditioning read_conditioning(const std::string& path, const DenoiserSpec& spec, bool per_prompt, bool shared);
// A prompt's conditioning with the spec's shared inputs found in `from` added.
Conditioning with_shared(Conditioning prompt, const Conditioning& from, const DenoiserSpec& spec);

}  // namespace raylight::cli
