// The sampling loop for server jobs. Guidance is computed exactly as sample_latents does
// (v = v_neg + cfg (v_pos - v_neg) per element in double, stored as fp32; CFG parallel
// exchanges the two predictions over the cfg group), so a server job and the command line
// give the same bytes for the same inputs.
#include "server/sample_runner.h"

#include <cstring>

#include "core/error.h"
#include "sampling/noise.h"

namespace raylight::server {
namespace {

void combine_guidance(Tensor& v_pos, const Tensor& v_neg, double cfg) {
  float* pv = v_pos.f32();
  const float* pu = v_neg.f32();
  for (int64_t i = 0; i < v_pos.numel(); ++i) pv[i] = static_cast<float>(pu[i] + cfg * (pv[i] - pu[i]));
}

// The starting point of item `i`: noise at sigmas[0], mixed with the latent below sigma 1.
Tensor initial_sample(const SamplePlan& plan, int64_t i) {
  const int64_t n = shape_numel(plan.item_shape);
  Tensor noise = plan.noise.defined()
                     ? plan.noise.slice_rows(i, i + 1).reshape(plan.item_shape).clone()
                     : gaussian_noise(plan.item_shape, plan.seed + static_cast<uint64_t>(i));
  const double s = plan.sigmas.front();
  if (s == 1.0 || !plan.latent.defined()) {
    if (s != 1.0) {
      float* x = noise.f32();
      for (int64_t k = 0; k < n; ++k) x[k] = static_cast<float>(s * x[k]);
    }
    return noise;
  }
  const float* l = plan.latent.f32() + i * n;
  float* x = noise.f32();
  for (int64_t k = 0; k < n; ++k) x[k] = static_cast<float>(s * x[k] + (1.0 - s) * l[k]);
  return noise;
}

}  // namespace

Tensor run_sample(LoadedWan& wan, const SamplePlan& plan, const StepHooks& hooks) {
  WanModel& model = *wan.model;
  Communicator* cfg_group = wan.groups.cfg.get();
  Communicator* dp_group = wan.groups.dp.get();
  const bool guided = plan.cfg != 1.0;
  const bool cfg_split = cfg_group && cfg_group->size() == 2;
  if (cfg_split && !guided)
    fail("the loaded layout uses CFG parallel, which needs cfg other than 1 (load without cfg_parallel for cfg 1)");
  const bool runs_cond = !cfg_split || cfg_group->rank() == 0;
  const bool runs_uncond = guided && (!cfg_split || cfg_group->rank() == 1);
  const WanContext cond = runs_cond ? model.embed_context(plan.context, plan.clip_fea) : WanContext{};
  const WanContext uncond = runs_uncond ? model.embed_context(plan.negative, plan.clip_fea) : WanContext{};

  auto velocity = [&](const Tensor& x, double sigma) {
    if (hooks.before_step) hooks.before_step();
    const double t = 1000.0 * sigma;
    if (cfg_split) {
      Tensor mine = model.forward(x, t, runs_cond ? cond : uncond, plan.y);
      Tensor both = Tensor::empty({2, mine.numel()});
      cfg_group->all_gather(mine.raw(), both.raw(), mine.nbytes());
      Tensor v = both.slice_rows(0, 1).reshape(mine.shape()).clone();
      combine_guidance(v, both.slice_rows(1, 2).reshape(mine.shape()), plan.cfg);
      return v;
    }
    Tensor v = model.forward(x, t, cond, plan.y);
    if (guided) combine_guidance(v, model.forward(x, t, uncond, plan.y), plan.cfg);
    return v;
  };

  const int64_t dp = dp_group ? dp_group->size() : 1;
  const int64_t dp_rank = dp_group ? dp_group->rank() : 0;
  const int64_t rounds = (plan.batch + dp - 1) / dp;
  const int steps = plan.steps();
  const int total = static_cast<int>(rounds) * steps;
  const int64_t item_numel = shape_numel(plan.item_shape);
  Shape out_shape = plan.item_shape;
  out_shape.insert(out_shape.begin(), plan.batch);
  Tensor out = Tensor::empty(out_shape);
  for (int64_t r = 0; r < rounds; ++r) {
    const int64_t item = r * dp + dp_rank;
    Tensor mine;
    if (item < plan.batch) {
      mine = sample_flow(plan.sampler, initial_sample(plan, item), plan.sigmas, velocity,
                         [&](int step, int) {
                           if (hooks.after_step) hooks.after_step(static_cast<int>(r) * steps + step, total);
                         });
    } else {  // nothing left for this group: keep step with the others
      for (int s = 0; s < steps; ++s)
        if (hooks.before_step) hooks.before_step();
      mine = Tensor::zeros(plan.item_shape);
    }
    if (dp == 1) {
      std::memcpy(out.f32() + item * item_numel, mine.f32(), mine.nbytes());
      continue;
    }
    Tensor all = Tensor::empty({dp, item_numel});
    dp_group->all_gather(mine.raw(), all.raw(), mine.nbytes());
    for (int64_t g = 0; g < dp && r * dp + g < plan.batch; ++g)
      std::memcpy(out.f32() + (r * dp + g) * item_numel, all.f32() + g * item_numel, mine.nbytes());
  }
  return plan.batched_output ? out : out.reshape(plan.item_shape);
}

}  // namespace raylight::server
