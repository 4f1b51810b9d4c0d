// Flux Kontext's reference images: latents [16, h, w] given as conditioning tensors
// "reference.0" .. "reference.N-1" (shared by both prompts), packed into 2x2 tokens like the
// noisy image and appended after it in the joint sequence. All references sit at first-axis
// position 1; along rows and columns they are placed side by side as ComfyUI's default
// ref_latents_method "offset" places them (the official single-reference code is the same:
// one reference at (1, 0, 0)). Only the noisy tokens come out of the model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace raylight {

// At most this many references (their tokens join every attention).
constexpr int kMaxFluxReferences = 8;
// A reference latent's height or width at most (latent pixels: 8192 image pixels).
constexpr int64_t kMaxReferenceSide = 1024;
// All references' tokens together at most (16 references of 1024x1024 pixels).
constexpr int64_t kMaxReferenceTokens = 65536;

// "reference.<i>".
std::string reference_name(int index);
// The index of a "reference.<i>" name (i a plain decimal below kMaxFluxReferences), or -1.
int reference_index(const std::string& name);

// Where a reference's tokens start on the row and column axes (in tokens: latent pixels / 2).
struct ReferencePlacement {
  int64_t row = 0, col = 0;
};

// ComfyUI's "offset" placement of latents [16, h_i, w_i] (h_i, w_i even): each reference
// goes below the ones before when that keeps the canvas squarer, else to their right.
std::vector<ReferencePlacement> place_references(const std::vector<Shape>& latents);

// Checks one reference tensor ([16, h, w] or [1, 16, h, w]: floats, finite, h and w even,
// at least 2 and at most kMaxReferenceSide) and returns it as fp32 [16, h, w]; errors name
// `name`.
Tensor checked_reference(const std::string& name, const Tensor& given, int64_t channels);

}  // namespace raylight
