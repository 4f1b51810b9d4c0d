#include "pipeline/sample_latents.h"

#include <cstring>

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

namespace {

// v = v_neg + cfg * (v_pos - v_neg), in place on v_pos.
void combine_guidance(Tensor& v_pos, const Tensor& v_neg, double cfg) {
  float* pv = v_pos.f32();
  const float* pu = v_neg.f32();
  for (int64_t i = 0; i < v_pos.numel(); ++i)
    pv[i] = static_cast<float>(pu[i] + cfg * (pv[i] - pu[i]));
}

}  // namespace

Tensor sample_wan_latents(WanModel& model, const Tensor& context, const Tensor& negative,
                          const SampleOptions& o, const StepCallback& on_step,
                          const SampleGroups& groups) {
  if (o.steps < 1) fail("steps must be at least 1, got ", o.steps);
  const bool guided = o.cfg != 1.0;
  const bool cfg_split = groups.cfg && groups.cfg->size() == 2;
  if (groups.cfg && groups.cfg->size() > 2) fail("CFG parallel uses exactly 2 ranks");
  if (cfg_split && !guided) fail("--cfg-parallel needs guidance (--cfg other than 1)");
  if (guided && !negative.defined()) fail("cfg ", o.cfg, " needs a negative context");
  const Shape shape = wan_latent_shape(model.config(), o);
  // With CFG parallel each rank embeds and runs only its own condition.
  const bool runs_cond = !cfg_split || groups.cfg->rank() == 0;
  const bool runs_uncond = guided && (!cfg_split || groups.cfg->rank() == 1);
  const WanContext cond = runs_cond ? model.embed_context(context, {}) : WanContext{};
  const WanContext uncond = runs_uncond ? model.embed_context(negative, {}) : WanContext{};

  auto velocity = [&](const Tensor& x, double sigma) {
    const double t = 1000.0 * sigma;
    if (cfg_split) {
      Tensor mine = model.forward(x, t, runs_cond ? cond : uncond);
      Tensor both = Tensor::empty({2, mine.numel()});
      groups.cfg->all_gather(mine.raw(), both.raw(), mine.nbytes());
      Tensor v = both.slice_rows(0, 1).reshape(mine.shape()).clone();
      combine_guidance(v, both.slice_rows(1, 2).reshape(mine.shape()), o.cfg);
      return v;
    }
    Tensor v = model.forward(x, t, cond);
    if (guided) combine_guidance(v, model.forward(x, t, uncond), o.cfg);
    return v;
  };
  const int dp_rank = groups.dp ? groups.dp->rank() : 0;
  const int dp_size = groups.dp ? groups.dp->size() : 1;
  Tensor noise = gaussian_noise(shape, o.seed + static_cast<uint64_t>(dp_rank));
  Tensor latent = sample_flow(o.sampler, noise, flow_sigmas(o.steps, o.shift), velocity, on_step);
  if (dp_size == 1) return latent;
  Shape batched = shape;
  batched.insert(batched.begin(), dp_size);
  Tensor all = Tensor::empty(batched);
  groups.dp->all_gather(latent.raw(), all.raw(), latent.nbytes());
  return all;
}

}  // namespace raylight
