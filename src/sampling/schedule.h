// Flow-matching sigma schedules (Wan 2.1 is a rectified-flow model).
//
// Convention used by everything under src/sampling/:
//   x_sigma = (1 - sigma) * x0 + sigma * noise,   sigma in [0, 1]
//   the model predicts the velocity v = noise - x0 (so dx/dsigma = v),
//   the data (x0) prediction is x - sigma * v, and the model's timestep is 1000 * sigma.
//
// The schedule is "uniform in unshifted sigma, then shifted": sigma_i = flow_shift(1 - i/steps)
// for i = 0..steps-1, followed by an exact 0. This is what ComfyUI's "simple" scheduler gives
// for a ModelSamplingSD3-style shift model and what Wan's own FlowUniPC scheduler gives with
// sigma_max = 1, so results can be compared against either reference. The shift pushes steps
// towards high noise (shift > 1), where Wan's video structure is decided.
//
// Values are doubles: the samplers do their scalar coefficient arithmetic in double and the
// schedule is tiny, so there is no reason to round it to float.
#pragma once

#include <vector>

namespace raylight {

// The time-shift map shift*s / (1 + (shift - 1)*s); identity for shift == 1, fixes 0 and 1.
double flow_shift(double sigma, double shift);

// steps + 1 strictly decreasing sigmas from 1 to 0 (see the file comment).
// Throws raylight::Error when steps < 1 or shift <= 0 (or is not finite).
std::vector<double> flow_sigmas(int steps, double shift);

// The timestep the Wan model is conditioned on at `sigma` (1000 * sigma).
inline double flow_timestep(double sigma) { return 1000.0 * sigma; }

// A part of a schedule, as ComfyUI's KSamplerAdvanced takes it (comfy/samplers.py KSampler.
// sample): the sigmas of steps [start_step, end_step] of the whole schedule; a cut before the
// end keeps its last sigma (the sample returned with its leftover noise) or, with
// `leftover_noise` false, sets it to 0 (the sample denoised fully at that step). The end cut
// is made first. Returns fewer than 2 sigmas when no step is left (start_step at or past the
// end), where ComfyUI returns the latent unchanged. Negative steps are an Error.
std::vector<double> cut_schedule(const std::vector<double>& sigmas, int start_step, int end_step, bool leftover_noise);

}  // namespace raylight
