// ODE samplers for flow-matching (velocity-predicting) models.
//
// Conventions (see schedule.h): x_sigma = (1 - sigma) x0 + sigma noise, the model returns the
// velocity v = noise - x0, the data prediction is D = x - sigma v. For the exponential
// integrators we use alpha = 1 - sigma and lambda = log(alpha / sigma) (half log-SNR), so
// sigma = 1 has lambda = -inf and sigma = 0 has lambda = +inf.
//
// Every sampler calls the model exactly once per step (steps = sigmas.size() - 1), at
// sigmas[0], sigmas[1], ..., sigmas[steps - 1] in that order, and never at the final sigma.
// Per-element arithmetic is done in double and stored as fp32; the scalar coefficients are
// computed once per step in double. The input tensor is never written; each step produces a
// fresh tensor, so a callback may keep the tensors it was given.
//
// Euler:    x <- x + (sigma_next - sigma) v.
//
// DPM++ 2M (data-prediction form, as k-diffusion's sample_dpmpp_2m but with flow alpha/sigma):
//   h = lambda_next - lambda,  x <- (sigma_next/sigma) x - alpha_next expm1(-h) D'
//   D' = D on the first step, when the previous point has non-finite lambda (sigma = 1) or when
//   sigma_next = 0 (the update is then exactly x <- D); otherwise with r = h_last / h,
//   D' = (1 + 1/(2r)) D - (1/(2r)) D_prev.
//
// UniPC (order 2, "bh2", x0 prediction): the predictor-corrector multistep scheme as in Wan
// 2.1's FlowUniPCMultistepScheduler (diffusers UniPCMultistepScheduler with solver_order=2,
// predict_x0=True, solver_type="bh2", lower_order_final=True, alpha = 1 - sigma):
//   * step 0 is order 1 (warm-up), the last step is order 1 (lower_order_final), all other
//     predictor steps order 2 (rho_p = 1/2);
//   * on every step after the first the UniC corrector refines the sample just reached, using
//     the new model output together with the previous sample and history; its order is the
//     order of the previous predictor step (order 1 uses rho_c = 1/2, order 2 solves the 2x2
//     system of the bh2 scheme). The corrector never needs an extra model call, so there is no
//     corrector after the final step;
//   * deviation, for robustness: a history point whose lambda is not finite (sigma == 1, i.e.
//     the first point of every flow_sigmas schedule) carries no usable derivative information
//     (its r_k is infinite). diffusers would divide by it and, in the corrector, produce NaN;
//     here the predictor or corrector that would use it drops to order 1 instead. For the
//     predictor this equals the limit diffusers' formula tends to.
//   With sigma_next = 0 the final (order-1) step returns exactly D, and sigma = 1 as the
//   starting point gives the exact first step x <- sigma_next x + alpha_next D.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace raylight {

enum class SamplerKind { Euler, UniPC, DPMpp2M };

// "euler", "unipc", "dpmpp2m" (exact, lower-case). Returns false (leaving *out alone) otherwise.
bool sampler_from_name(const std::string& name, SamplerKind* out);
std::string sampler_name(SamplerKind k);

// Model callback: velocity prediction at (x, sigma). Must return an fp32 tensor of x's shape.
using VelocityFn = std::function<Tensor(const Tensor& x, double sigma)>;
// Progress callback, called after each step with step = 1..total (steps completed), total =
// number of steps. May be empty.
using StepCallback = std::function<void(int step, int total)>;
// Called on the sample each step reaches, before anything reads it (the next model call, the
// multistep history, the result): where conditioning pins part of the latent (TI2V's first
// frame). It may write the tensor it gets, which no sampler state shares. May be empty.
using SampleFix = std::function<void(Tensor& x)>;

// Integrates from x (at sigmas[0]) down to sigmas.back(); returns the final sample (fp32, x's
// shape). x is not modified. sigmas must have at least 2 entries, lie in [0, 1] and be strictly
// decreasing; a model output of the wrong shape is an error. Throws raylight::Error.
Tensor sample_flow(SamplerKind kind, const Tensor& x, const std::vector<double>& sigmas,
                   const VelocityFn& model, const StepCallback& on_step = {}, const SampleFix& fix = {});

}  // namespace raylight
