#include "pipeline/sample_latents.h"

#include "core/error.h"
#include "sampling/noise.h"
#include "sampling/schedule.h"

namespace raylight {

Shape wan_latent_shape(const WanConfig& config, const SampleOptions& o) {
  if (o.width <= 0 || o.height <= 0 || o.width % 16 || o.height % 16)
    fail("width and height must be positive multiples of 16, got ", o.width, "x", o.height);
  if (o.frames < 1 || (o.frames - 1) % 4 != 0)
    fail("frames must be 4k+1 (1, 5, 9, ..., 81), got ", o.frames);
  return {config.out_dim, 1 + (o.frames - 1) / 4, o.height / 8, o.width / 8};
}

Tensor sample_wan_latents(WanModel& model, const Tensor& context, const Tensor& negative,
                          const SampleOptions& o, const StepCallback& on_step) {
  if (o.steps < 1) fail("steps must be at least 1, got ", o.steps);
  const bool guided = o.cfg != 1.0;
  if (guided && !negative.defined()) fail("cfg ", o.cfg, " needs a negative context");
  const Shape shape = wan_latent_shape(model.config(), o);
  const WanContext cond = model.embed_context(context, {});
  const WanContext uncond = guided ? model.embed_context(negative, {}) : WanContext{};

  auto velocity = [&](const Tensor& x, double sigma) {
    const double t = 1000.0 * sigma;
    Tensor v = model.forward(x, t, cond);
    if (!guided) return v;
    Tensor vu = model.forward(x, t, uncond);
    float* pv = v.f32();
    const float* pu = vu.f32();
    for (int64_t i = 0; i < v.numel(); ++i) pv[i] = static_cast<float>(pu[i] + o.cfg * (pv[i] - pu[i]));
    return v;
  };
  Tensor noise = gaussian_noise(shape, o.seed);
  return sample_flow(o.sampler, noise, flow_sigmas(o.steps, o.shift), velocity, on_step);
}

}  // namespace raylight
