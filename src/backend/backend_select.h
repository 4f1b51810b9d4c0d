// Choosing a backend by name: "cpu", "cuda", or "auto" (CUDA when this build has it and a
// GPU is visible, else the CPU). Lives beside the op set so loaders and tools need not know
// which backends a build contains.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"

namespace raylight {

enum class BackendChoice { Auto, Cpu, Cuda };

// "auto" | "cpu" | "cuda"; false for anything else.
bool backend_choice_from_name(const std::string& name, BackendChoice* out);
// Whether this build has the CUDA backend and a GPU is visible.
bool cuda_usable();
// How many GPUs this build can use here (0 without the CUDA backend or a visible GPU).
int usable_gpus();
// Whether `choice` gives the CPU backend here (cpu, or auto without a usable GPU).
bool resolves_to_cpu(BackendChoice choice);
// Attention kernel names a CUDA backend takes (--attention, the server's load request):
// "cudnn" | "own" | "fp8"; "" leaves it to RAYLIGHT_ATTENTION, else cudnn.
bool attention_name_known(const std::string& name);
// `rank` picks the GPU (rank modulo the visible count) when several processes share a host.
// A non-empty `attention` needs the CUDA backend (the CPU has one exact attention).
std::unique_ptr<Backend> make_backend(BackendChoice choice, int rank = 0, const std::string& attention = "");

}  // namespace raylight
