#include "pipeline/sample_job.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "pipeline/job_plans.h"
#include "sampling/noise.h"
#include "sampling/schedule.h"

namespace raylight {
namespace {

void combine_guidance(Tensor& v_pos, const Tensor& v_neg, double cfg) {
  float* pv = v_pos.f32();
  const float* pu = v_neg.f32();
  for (int64_t i = 0; i < v_pos.numel(); ++i) pv[i] = static_cast<float>(pu[i] + cfg * (pv[i] - pu[i]));
}

// The starting point of item `i`: noise at sigmas[0], mixed with the latent below sigma 1;
// without add_noise the latent itself.
Tensor initial_sample(const SampleJob& job, int64_t i) {
  const int64_t n = shape_numel(job.item_shape);
  if (!job.add_noise) {
    if (!job.latent.defined()) fail("a job without added noise needs the latent to continue from");
    return job.latent.reshape({job.batch, n}).slice_rows(i, i + 1).reshape(job.item_shape).clone();
  }
  Tensor noise = job.noise.defined()
                     ? job.noise.reshape({job.batch, n}).slice_rows(i, i + 1).reshape(job.item_shape).clone()
                     : gaussian_noise(job.item_shape, job.seed + static_cast<uint64_t>(i));
  const double s = job.sigmas.front();
  if (s == 1.0 || !job.latent.defined()) {
    if (s != 1.0) {
      float* x = noise.f32();
      for (int64_t k = 0; k < n; ++k) x[k] = static_cast<float>(s * x[k]);
    }
    return noise;
  }
  const float* l = job.latent.f32() + i * n;
  float* x = noise.f32();
  for (int64_t k = 0; k < n; ++k) x[k] = static_cast<float>(s * x[k] + (1.0 - s) * l[k]);
  return noise;
}

}  // namespace

Tensor run_sample_job(LoadedModel& model, const SampleJob& job, const SampleHooks& hooks) {
  Communicator* cfg_group = model.groups.cfg.get();
  Communicator* dp_group = model.groups.dp.get();
  // One expert, or two split by noise level (the high-noise one while t >= boundary).
  struct Expert {
    Denoiser* denoiser;
    double cfg;
    std::unique_ptr<PreparedConditioning> cond, uncond;
  };
  std::vector<Expert> experts;
  experts.push_back({model.denoiser.get(), job.cfg, nullptr, nullptr});
  double boundary = 0;
  if (model.low_noise) {
    boundary = model.spec->expert()->boundary;
    experts.push_back({model.low_noise->denoiser.get(), job.cfg_low.value_or(job.cfg), nullptr, nullptr});
    // One named expert for every step: only it is prepared and run.
    if (job.expert == ExpertChoice::Low) experts.erase(experts.begin());
    if (job.expert == ExpertChoice::High) experts.pop_back();
  } else if (job.expert != ExpertChoice::ByBoundary) {
    fail("a job names the ", job.expert == ExpertChoice::High ? "high" : "low", "-noise expert, but ",
         model.spec->variant(), " is loaded as one model (load a two-expert pair for that)");
  }
  bool guided = false;
  for (const Expert& e : experts) guided = guided || e.cfg != 1.0;
  const bool cfg_split = cfg_group && cfg_group->size() == 2;
  if (cfg_group && cfg_group->size() > 2) fail("CFG parallel uses exactly 2 ranks");
  if (cfg_split && !guided)
    fail("the loaded layout uses CFG parallel, which needs cfg other than 1 (load without cfg_parallel for cfg 1)");
  if (guided && job.negative.empty()) fail("cfg ", job.cfg, " needs a negative prompt's conditioning");
  if (job.steps() < 1) fail("steps must be at least 1, got ", job.steps());
  // With CFG parallel each rank embeds and runs only its own condition.
  const bool runs_cond = !cfg_split || cfg_group->rank() == 0;
  const bool runs_uncond = guided && (!cfg_split || cfg_group->rank() == 1);
  // The product plans (cuBLASLt's, timed) of this job's shapes for the rows this process
  // holds, made now rather than inside the conditioning embedding and the first step.
  prepare_product_plans(model, job.item_shape);
  for (Expert& e : experts) {
    if (runs_cond) e.cond = e.denoiser->prepare(job.positive);
    if (runs_uncond) e.uncond = e.denoiser->prepare(job.negative);
  }
  // The attention plans this job's shapes need (cuDNN's), built now rather than inside the
  // first step.
  prepare_attention_plans(model, job.item_shape);

  auto velocity = [&](const Tensor& x, double sigma) {
    if (hooks.before_step) hooks.before_step();
    const double t = 1000.0 * sigma;
    const Expert& e = experts.size() == 2 && t < boundary ? experts[1] : experts[0];
    if (cfg_split) {
      Tensor mine = e.denoiser->predict(x, t, runs_cond ? *e.cond : *e.uncond);
      Tensor both = Tensor::empty({2, mine.numel()});
      cfg_group->all_gather(mine.raw(), both.raw(), mine.nbytes());
      Tensor v = both.slice_rows(0, 1).reshape(mine.shape()).clone();
      combine_guidance(v, both.slice_rows(1, 2).reshape(mine.shape()), e.cfg);
      return v;
    }
    Tensor v = e.denoiser->predict(x, t, *e.cond);
    if (e.cfg != 1.0) combine_guidance(v, e.denoiser->predict(x, t, *e.uncond), e.cfg);
    return v;
  };

  // What the conditioning pins (TI2V's first frame), on the start and after every step.
  const SampleFix pin = model.spec->latent_pin(job.positive);
  auto start = [&](int64_t item) {
    Tensor x = initial_sample(job, item);
    if (pin) pin(x);
    return x;
  };

  const int64_t dp = dp_group ? dp_group->size() : 1;
  const int64_t dp_rank = dp_group ? dp_group->rank() : 0;
  const int64_t rounds = (job.batch + dp - 1) / dp;
  const int steps = job.steps();
  const int total = static_cast<int>(rounds) * steps;
  const int64_t item_numel = shape_numel(job.item_shape);
  Shape out_shape = job.item_shape;
  out_shape.insert(out_shape.begin(), job.batch);
  Tensor out = Tensor::empty(out_shape);
  for (int64_t r = 0; r < rounds; ++r) {
    const int64_t item = r * dp + dp_rank;
    Tensor mine;
    if (item < job.batch) {
      mine = sample_flow(
          job.sampler, start(item), job.sigmas, velocity,
          [&](int step, int) {
            if (hooks.after_step) hooks.after_step(static_cast<int>(r) * steps + step, total);
          },
          pin);
    } else {
      // Nothing left for this group, but its forwards must still meet the others' collectives
      // (FSDP gathers over every rank, the step hooks agree): it samples the last item again
      // and drops it.
      sample_flow(job.sampler, start(job.batch - 1), job.sigmas, velocity, {}, pin);
      mine = Tensor::zeros(job.item_shape);
    }
    if (dp == 1) {
      std::memcpy(out.f32() + item * item_numel, mine.f32(), mine.nbytes());
      continue;
    }
    Tensor all = Tensor::empty({dp, item_numel});
    dp_group->all_gather(mine.raw(), all.raw(), mine.nbytes());
    for (int64_t g = 0; g < dp && r * dp + g < job.batch; ++g)
      std::memcpy(out.f32() + (r * dp + g) * item_numel, all.f32() + g * item_numel, mine.nbytes());
  }
  return job.batched_output ? out : out.reshape(job.item_shape);
}

std::optional<double> low_noise_cfg(const DenoiserSpec& spec, std::optional<double> cfg,
                                    std::optional<double> cfg_low) {
  const auto role = spec.expert();
  if (!role) {
    if (cfg_low) fail("a low-noise guidance (cfg_low) is for two-expert models; ", spec.variant(), " is one model");
    return std::nullopt;
  }
  const double g = cfg_low ? *cfg_low : cfg ? *cfg : role->cfg_low;
  if (!std::isfinite(g)) fail("cfg_low must be a finite number, got ", g);
  return g;
}

SampleOptions sample_defaults(const DenoiserSpec& spec) {
  const SamplingDefaults d = spec.defaults();
  SampleOptions o;
  o.size = {d.width, d.height, d.frames};
  o.steps = d.steps;
  o.cfg = d.cfg;
  o.sampler = d.sampler;
  o.cfg_low = low_noise_cfg(spec, std::nullopt, std::nullopt);
  return o;
}

Conditioning with_guidance(const DenoiserSpec& spec, Conditioning c, std::optional<double> given) {
  bool takes = false;
  for (const auto& in : spec.conditioning_inputs()) takes = takes || in.name == "guidance";
  if (!takes) {
    if (given) fail("guidance ", *given, " was given, but ", spec.variant(), " takes no guidance input");
    return c;
  }
  const double g = given.value_or(spec.default_guidance(c));
  if (!std::isfinite(g)) fail("guidance must be a finite number, got ", g);
  c["guidance"] = Tensor::from_vector({1}, {static_cast<float>(g)});
  return c;
}

SampleJob make_sample_job(const DenoiserSpec& spec, const SampleOptions& o, const Conditioning& positive,
                          const Conditioning& negative, int64_t batch) {
  if (o.steps < 1) fail("steps must be at least 1, got ", o.steps);
  if (batch < 1) fail("a sampling job needs at least one item, got ", batch);
  SampleJob job;
  job.item_shape = spec.latent_shape(o.size);
  job.positive = spec.check_conditioning(with_guidance(spec, positive, o.guidance), job.item_shape);
  if (o.cfg != 1.0 || o.cfg_low.value_or(1.0) != 1.0) {
    if (negative.empty()) fail("cfg ", o.cfg, " needs a negative prompt's conditioning");
    job.negative = spec.check_conditioning(with_guidance(spec, negative, o.guidance), job.item_shape);
  }
  job.batch = batch;
  job.batched_output = batch > 1;
  job.sigmas = flow_sigmas(o.steps, o.shift.value_or(spec.default_shift(job.item_shape)));
  job.cfg = o.cfg;
  if (o.cfg_low) job.cfg_low = low_noise_cfg(spec, o.cfg, o.cfg_low);
  job.sampler = o.sampler;
  job.seed = o.seed;
  return job;
}

}  // namespace raylight
