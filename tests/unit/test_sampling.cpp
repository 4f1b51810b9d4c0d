// Tests for src/sampling: schedule values, the counter-based noise (including golden values
// re-derived here from the formula documented in noise.h), and the samplers against an
// analytic flow ODE (Gaussian data, whose exact velocity and exact solution are known).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "sampling/noise.h"
#include "sampling/samplers.h"
#include "sampling/schedule.h"

using namespace raylight;

namespace {

// ---------------------------------------------------------------------------------------
// Schedule

TEST(SamplingSchedule, UnshiftedIsLinear) {
  std::vector<double> s = flow_sigmas(4, 1.0);
  std::vector<double> want = {1.0, 0.75, 0.5, 0.25, 0.0};
  ASSERT_EQ(s.size(), want.size());
  for (size_t i = 0; i < s.size(); ++i) EXPECT_DOUBLE_EQ(s[i], want[i]) << i;
}

TEST(SamplingSchedule, ShiftFiveByHand) {
  // flow_shift(s, 5) = 5s / (1 + 4s)
  std::vector<double> s = flow_sigmas(4, 5.0);
  ASSERT_EQ(s.size(), 5u);
  EXPECT_DOUBLE_EQ(s[0], 1.0);
  EXPECT_NEAR(s[1], 3.75 / 4.0, 1e-15);        // 0.75 -> 3.75 / 4 = 0.9375
  EXPECT_NEAR(s[2], 2.5 / 3.0, 1e-15);         // 0.5  -> 2.5 / 3
  EXPECT_NEAR(s[3], 1.25 / 2.0, 1e-15);        // 0.25 -> 1.25 / 2 = 0.625
  EXPECT_EQ(s[4], 0.0);
  EXPECT_NEAR(flow_shift(0.1, 5.0), 0.5 / 1.4, 1e-15);
  EXPECT_NEAR(flow_shift(0.3, 3.0), 0.9 / 1.6, 1e-15);
  EXPECT_DOUBLE_EQ(flow_shift(0.37, 1.0), 0.37);
  EXPECT_DOUBLE_EQ(flow_timestep(0.25), 250.0);
}

TEST(SamplingSchedule, MonotoneDecreasing) {
  for (double shift : {0.5, 1.0, 3.0, 5.0, 8.0, 17.0}) {
    for (int steps : {1, 2, 7, 30, 50}) {
      std::vector<double> s = flow_sigmas(steps, shift);
      ASSERT_EQ(s.size(), static_cast<size_t>(steps) + 1);
      EXPECT_DOUBLE_EQ(s.front(), 1.0);
      EXPECT_EQ(s.back(), 0.0);
      for (int i = 1; i <= steps; ++i) EXPECT_LT(s[i], s[i - 1]) << steps << " " << shift;
    }
  }
}

TEST(SamplingSchedule, BadArguments) {
  EXPECT_THROW(flow_sigmas(0, 1.0), Error);
  EXPECT_THROW(flow_sigmas(-3, 1.0), Error);
  EXPECT_THROW(flow_sigmas(10, 0.0), Error);
  EXPECT_THROW(flow_sigmas(10, -2.0), Error);
  EXPECT_THROW(flow_sigmas(10, std::nan("")), Error);
}

// ---------------------------------------------------------------------------------------
// Noise

// Straightforward re-derivation of the noise.h formula, written independently of noise.cpp.
float reference_noise(uint64_t seed, int64_t i) {
  auto output = [&](uint64_t n) {
    // Output n of a SplitMix64 generator started from state `seed`: for small n literally
    // run the generator n + 1 times; far out, jump the state to seed + (n + 1) * G.
    uint64_t state = seed;
    uint64_t z = 0;
    if (n > 4096) state = seed + n * 0x9E3779B97F4A7C15ULL;
    for (uint64_t k = (n > 4096 ? n : 0); k <= n; ++k) {
      state += 0x9E3779B97F4A7C15ULL;
      z = state;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
      z = z ^ (z >> 31);
    }
    return z;
  };
  uint64_t p = static_cast<uint64_t>(i) / 2;
  uint64_t a = output(2 * p), b = output(2 * p + 1);
  double u1 = std::ldexp(static_cast<double>((a >> 11) + 1), -53);
  double u2 = std::ldexp(static_cast<double>(b >> 11), -53);
  double r = std::sqrt(-2.0 * std::log(u1));
  double t = 6.283185307179586 * u2;
  return static_cast<float>(i % 2 == 0 ? r * std::cos(t) : r * std::sin(t));
}

TEST(SamplingNoise, SplitMix64KnownValues) {
  // The standard SplitMix64 reference sequence from state 0 (first outputs).
  EXPECT_EQ(splitmix64(0), 0xE220A8397B1DCDAFULL);
  EXPECT_EQ(splitmix64(0x9E3779B97F4A7C15ULL), 0x6E789E6AA1B965F4ULL);
  EXPECT_EQ(splitmix64(2 * 0x9E3779B97F4A7C15ULL), 0x06C45D188009454FULL);
}

TEST(SamplingNoise, GoldenValuesMatchDocumentedFormula) {
  for (uint64_t seed : {0ULL, 1ULL, 42ULL, 0xDEADBEEFCAFEULL}) {
    Tensor t = gaussian_noise({3, 7}, seed);
    const float* p = t.f32();
    for (int64_t i = 0; i < 21; ++i) {
      float want = reference_noise(seed, i);
      EXPECT_EQ(std::memcmp(&p[i], &want, 4), 0) << "seed " << seed << " i " << i << ": "
                                                  << p[i] << " vs " << want;
    }
  }
  // Far-away indices (the counter is the only state).
  float v = 0.0f;
  for (int64_t i : {int64_t{999999}, int64_t{1} << 33, (int64_t{1} << 40) + 1}) {
    gaussian_fill(&v, i, 1, 7);
    float want = reference_noise(7, i);
    EXPECT_EQ(std::memcmp(&v, &want, 4), 0) << i;
  }
}

TEST(SamplingNoise, DeterministicAndSeedDependent) {
  Tensor a = gaussian_noise({2, 3, 4, 5}, 1234);
  Tensor b = gaussian_noise({2, 3, 4, 5}, 1234);
  Tensor c = gaussian_noise({2, 3, 4, 5}, 1235);
  ASSERT_EQ(a.shape(), (Shape{2, 3, 4, 5}));
  EXPECT_EQ(std::memcmp(a.f32(), b.f32(), a.nbytes()), 0);
  int differ = 0;
  for (int64_t i = 0; i < a.numel(); ++i) differ += a.f32()[i] != c.f32()[i];
  EXPECT_GT(differ, a.numel() - 3);
}

TEST(SamplingNoise, MomentsOverAMillion) {
  const int64_t n = 1000000;
  Tensor t = gaussian_noise({n}, 20240601);
  const float* p = t.f32();
  double sum = 0, sum2 = 0, sum4 = 0;
  int64_t beyond3 = 0;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_TRUE(std::isfinite(p[i]));
    double x = p[i];
    sum += x;
    sum2 += x * x;
    sum4 += x * x * x * x;
    beyond3 += std::fabs(x) > 3.0;
  }
  double mean = sum / n;
  double var = sum2 / n - mean * mean;
  // Standard errors: mean 1/sqrt(n) = 0.001, variance sqrt(2/n) = 0.0014; 5 sigma bounds.
  EXPECT_NEAR(mean, 0.0, 0.005);
  EXPECT_NEAR(var, 1.0, 0.0071);
  // Fourth moment 3 (se sqrt(96/n) ~ 0.0098) and the two-sided 3-sigma tail 0.0027.
  EXPECT_NEAR(sum4 / n, 3.0, 0.05);
  EXPECT_NEAR(static_cast<double>(beyond3) / n, 0.0026998, 0.0003);
  // Even (cos) and odd (sin) halves are separately standard.
  double se = 0, so = 0;
  for (int64_t i = 0; i < n; i += 2) {
    se += p[i];
    so += p[i + 1];
  }
  EXPECT_NEAR(se / (n / 2), 0.0, 0.0071);
  EXPECT_NEAR(so / (n / 2), 0.0, 0.0071);
}

TEST(SamplingNoise, SubRangeEqualsFullTensor) {
  Tensor full = gaussian_noise({1001}, 99);
  for (auto [begin, count] : std::vector<std::pair<int64_t, int64_t>>{
           {0, 1001}, {0, 1}, {1, 1}, {1, 10}, {2, 9}, {3, 500}, {500, 501}, {1000, 1}, {7, 0}}) {
    std::vector<float> part(static_cast<size_t>(count) + 1, -12345.0f);
    gaussian_fill(part.data(), begin, count, 99);
    EXPECT_EQ(std::memcmp(part.data(), full.f32() + begin, count * 4), 0)
        << begin << " " << count;
    EXPECT_EQ(part[count], -12345.0f) << "wrote past the range";
  }
  float dummy;
  EXPECT_THROW(gaussian_fill(&dummy, -1, 1, 0), Error);
  EXPECT_THROW(gaussian_fill(&dummy, 0, -1, 0), Error);
}

// ---------------------------------------------------------------------------------------
// Samplers

const SamplerKind kAllKinds[] = {SamplerKind::Euler, SamplerKind::UniPC, SamplerKind::DPMpp2M};

TEST(SamplingSamplers, Names) {
  for (SamplerKind k : kAllKinds) {
    SamplerKind back = SamplerKind::Euler;
    ASSERT_TRUE(sampler_from_name(sampler_name(k), &back));
    EXPECT_EQ(back, k);
  }
  EXPECT_EQ(sampler_name(SamplerKind::Euler), "euler");
  EXPECT_EQ(sampler_name(SamplerKind::UniPC), "unipc");
  EXPECT_EQ(sampler_name(SamplerKind::DPMpp2M), "dpmpp2m");
  SamplerKind out = SamplerKind::UniPC;
  EXPECT_FALSE(sampler_from_name("Euler_a", &out));
  EXPECT_FALSE(sampler_from_name("", &out));
  EXPECT_EQ(out, SamplerKind::UniPC);
}

// Gaussian data: element i has x0 ~ N(mu, sd^2) with (mu, sd) = groups[i % groups.size()], and
// noise ~ N(0, 1). The exact velocity E[noise - x0 | x] is affine in x, and the exact ODE
// solution from x(1) = z is x(sigma) = (1 - sigma) mu + sqrt((1 - sigma)^2 sd^2 + sigma^2) z.
struct GaussianProblem {
  std::vector<double> mu, sd;
  Tensor z;  // the starting noise, x(sigma = 1)

  GaussianProblem(const std::vector<std::pair<double, double>>& groups, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      mu.push_back(groups[i % groups.size()].first);
      sd.push_back(groups[i % groups.size()].second);
    }
    z = gaussian_noise({n}, 31337);
  }

  VelocityFn velocity() const {
    return [this](const Tensor& x, double sigma) {
      Tensor v = Tensor::empty(x.shape());
      for (int64_t i = 0; i < x.numel(); ++i) {
        double a = 1.0 - sigma;
        double m = a * mu[i];
        double var = a * a * sd[i] * sd[i] + sigma * sigma;
        double dx = x.f32()[i] - m;
        double e_x0 = mu[i] + a * sd[i] * sd[i] * dx / var;
        double e_n = sigma * dx / var;
        v.f32()[i] = static_cast<float>(e_n - e_x0);
      }
      return v;
    };
  }

  // Max abs error of a final sample against the exact ODE solution mu + sd z.
  double error(const Tensor& x) const {
    double worst = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      double exact = mu[i] + sd[i] * z.f32()[i];
      worst = std::max(worst, std::fabs(x.f32()[i] - exact));
    }
    return worst;
  }

  double run(SamplerKind kind, int steps, double shift) const {
    return error(sample_flow(kind, z, flow_sigmas(steps, shift), velocity()));
  }
};

// A broad mixture of data scales (used where only coarse claims are made).
GaussianProblem mixed_problem() {
  return GaussianProblem({{0.7, 0.3}, {-1.3, 1.5}, {0.0, 0.5}, {2.5, 0.8}, {-0.2, 2.0}}, 200);
}

// Data whose scale suits the shift. A shifted schedule on data x0 is exactly the unshifted
// schedule on x0 / shift, rescaled: with sigma = flow_shift(t, k),
//   (1 - sigma) x0 + sigma n = k ((1 - t) x0 / k + t n) / (1 + (k - 1) t),
// and lambda(sigma) = lambda(t) - log k, so the exponential integrators take identical steps.
// With 16..32 steps the error of data much narrower than `shift` is still pre-asymptotic
// (the last steps are wide compared with the data scale and the error changes sign as the
// step count grows), so the order is measured on sd in [1.2, 2] * shift, where it is not.
GaussianProblem scaled_problem(double shift) {
  std::vector<std::pair<double, double>> groups;
  for (auto [m, s] : std::vector<std::pair<double, double>>{
           {0.7, 1.2}, {-1.3, 1.5}, {0.0, 2.0}, {2.5, 1.2}, {-0.2, 1.5}})
    groups.push_back({m * shift, s * shift});
  return GaussianProblem(groups, 200);
}

// The linear model: x0 is a fixed point, v = (x - x0) / sigma is constant along the path
// x = (1 - s) x0 + s z, so every sampler must land on the exact path point.
struct LinearProblem {
  Tensor z, target;
  LinearProblem() : z(gaussian_noise({64}, 5)), target(gaussian_noise({64}, 6)) {}
  VelocityFn velocity() const {
    return [this](const Tensor& x, double sigma) {
      Tensor v = Tensor::empty(x.shape());
      for (int64_t i = 0; i < x.numel(); ++i)
        v.f32()[i] = static_cast<float>((double(x.f32()[i]) - target.f32()[i]) / sigma);
      return v;
    };
  }
};

TEST(SamplingSamplers, ExactForLinearPath) {
  LinearProblem lp;
  for (SamplerKind k : kAllKinds) {
    for (double shift : {1.0, 5.0}) {
      for (int steps : {1, 2, 3, 10, 25, 50}) {
        Tensor out = sample_flow(k, lp.z, flow_sigmas(steps, shift), lp.velocity());
        for (int64_t i = 0; i < 64; ++i)
          ASSERT_NEAR(out.f32()[i], lp.target.f32()[i], 1e-5)
              << sampler_name(k) << " steps " << steps << " shift " << shift << " i " << i;
      }
    }
  }
}

TEST(SamplingSamplers, ExactForLinearPathOnPartialSchedules) {
  // Stopping above 0, and starting below 1 (so no infinite lambda anywhere: UniPC uses its
  // second-order predictor and corrector from the second step on).
  LinearProblem lp;
  const std::vector<std::vector<double>> schedules = {
      {1.0, 0.9, 0.7, 0.4}, {0.8, 0.5, 0.3, 0.0}, {0.95, 0.9, 0.6, 0.5, 0.45, 0.2, 0.1}};
  for (SamplerKind k : kAllKinds) {
    for (const auto& sig : schedules) {
      // Start on the path at sigma[0].
      Tensor x = Tensor::empty({64});
      for (int64_t i = 0; i < 64; ++i)
        x.f32()[i] = static_cast<float>((1 - sig[0]) * lp.target.f32()[i] + sig[0] * lp.z.f32()[i]);
      Tensor out = sample_flow(k, x, sig, lp.velocity());
      double s = sig.back();
      for (int64_t i = 0; i < 64; ++i)
        ASSERT_NEAR(out.f32()[i], (1 - s) * lp.target.f32()[i] + s * lp.z.f32()[i], 1e-5)
            << sampler_name(k) << " ends at " << s << " i " << i;
    }
  }
}

TEST(SamplingSamplers, CallsModelOncePerStepInOrder) {
  const int64_t n = 40;
  GaussianProblem prob({{0.7, 0.3}, {-1.0, 1.0}}, n);
  for (SamplerKind k : kAllKinds) {
    for (int steps : {1, 2, 3, 8, 20}) {
      std::vector<double> sigmas = flow_sigmas(steps, 3.0);
      std::vector<double> seen;
      std::vector<std::pair<int, int>> progress;
      VelocityFn inner = prob.velocity();
      VelocityFn model = [&](const Tensor& x, double sigma) {
        seen.push_back(sigma);
        EXPECT_EQ(x.shape(), (Shape{n}));
        return inner(x, sigma);
      };
      Tensor z_before = prob.z.clone();
      Tensor out = sample_flow(k, prob.z, sigmas, model,
                               [&](int step, int total) { progress.push_back({step, total}); });
      ASSERT_EQ(seen.size(), static_cast<size_t>(steps)) << sampler_name(k);
      for (int i = 0; i < steps; ++i) EXPECT_EQ(seen[i], sigmas[i]) << sampler_name(k) << i;
      ASSERT_EQ(progress.size(), static_cast<size_t>(steps));
      for (int i = 0; i < steps; ++i) {
        EXPECT_EQ(progress[i].first, i + 1);
        EXPECT_EQ(progress[i].second, steps);
      }
      EXPECT_EQ(out.shape(), (Shape{n}));
      for (int64_t i = 0; i < n; ++i) EXPECT_TRUE(std::isfinite(out.f32()[i])) << i;
      EXPECT_EQ(std::memcmp(z_before.f32(), prob.z.f32(), z_before.nbytes()), 0)
          << "input modified";
      // Determinism: a second run gives the same bytes.
      Tensor again = sample_flow(k, prob.z, sigmas, prob.velocity());
      EXPECT_EQ(std::memcmp(out.f32(), again.f32(), out.nbytes()), 0) << sampler_name(k);
    }
  }
}

TEST(SamplingSamplers, RejectsBadInput) {
  GaussianProblem prob({{0.0, 1.0}}, 10);
  for (SamplerKind k : kAllKinds) {
    EXPECT_THROW(sample_flow(k, prob.z, {1.0}, prob.velocity()), Error);
    EXPECT_THROW(sample_flow(k, prob.z, {1.0, 0.5, 0.5, 0.0}, prob.velocity()), Error);
    EXPECT_THROW(sample_flow(k, prob.z, {0.2, 0.5, 0.0}, prob.velocity()), Error);
    EXPECT_THROW(sample_flow(k, prob.z, {1.5, 0.5, 0.0}, prob.velocity()), Error);
    EXPECT_THROW(sample_flow(k, prob.z, {1.0, 0.5, -0.1}, prob.velocity()), Error);
    VelocityFn wrong = [](const Tensor&, double) { return Tensor::zeros({3}); };
    EXPECT_THROW(sample_flow(k, prob.z, {1.0, 0.5, 0.0}, wrong), Error);
    EXPECT_THROW(sample_flow(k, prob.z, {1.0, 0.5, 0.0}, VelocityFn{}), Error);
  }
}

TEST(SamplingSamplers, MatchesFloat64Transcriptions) {
  // Golden values from float64 scripts written for this test: one transcribes diffusers'
  // UniPCMultistepScheduler.step (solver_order=2, predict_x0, bh2, lower_order_final, flow
  // alpha = 1 - sigma) line by line, the other k-diffusion's sample_dpmpp_2m with the flow
  // alpha/sigma. Setup: mu = 0.7, sd = 1, 12 steps, sigma_i = flow_shift(0.999 (1 - i/12), 5),
  // then 0. Starting below 1 keeps every lambda but the last finite, so no order drops apply.
  std::vector<double> sig;
  for (int i = 0; i < 12; ++i) sig.push_back(flow_shift(0.999 - 0.999 * i / 12.0, 5.0));
  sig.push_back(0.0);
  GaussianProblem prob({{0.7, 1.0}}, 3);
  prob.z = Tensor::from_vector({3}, {0.0f, 1.0f, -1.7f});
  Tensor uni = sample_flow(SamplerKind::UniPC, prob.z, sig, prob.velocity());
  Tensor dpm = sample_flow(SamplerKind::DPMpp2M, prob.z, sig, prob.velocity());
  const double want_uni[] = {0.699871548, 1.616655367, -0.858660946};
  const double want_dpm[] = {0.699872628, 1.608943477, -0.845547815};
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(uni.f32()[i], want_uni[i], 1e-6) << i;
    EXPECT_NEAR(dpm.f32()[i], want_dpm[i], 1e-6) << i;
  }
}

TEST(SamplingSamplers, ErrorDecreasesWithSteps) {
  for (double shift : {1.0, 5.0}) {
    GaussianProblem prob = scaled_problem(shift);
    for (SamplerKind k : kAllKinds) {
      double prev = 1e30;
      for (int steps : {4, 8, 16, 32, 64, 128}) {
        double e = prob.run(k, steps, shift);
        EXPECT_LT(e, prev) << sampler_name(k) << " shift " << shift << " steps " << steps;
        prev = e;
      }
    }
  }
  // The broad mixture (data scales 0.3..2) is pre-asymptotic at moderate step counts, but
  // every sampler still converges over a wide range.
  GaussianProblem mix = mixed_problem();
  for (double shift : {1.0, 5.0})
    for (SamplerKind k : kAllKinds)
      EXPECT_LT(mix.run(k, 256, shift), mix.run(k, 16, shift) / 8) << sampler_name(k) << shift;
}

double observed_order(const GaussianProblem& prob, SamplerKind k, double shift, int n1, int n2) {
  double e1 = prob.run(k, n1, shift), e2 = prob.run(k, n2, shift);
  double order = std::log(e1 / e2) / std::log(static_cast<double>(n2) / n1);
  std::printf("    %-8s shift %.0f  err(%d)=%.3e err(%d)=%.3e  order %.2f\n",
              sampler_name(k).c_str(), shift, n1, e1, n2, e2, order);
  return order;
}

TEST(SamplingSamplers, ConvergenceOrders) {
  for (double shift : {1.0, 5.0}) {
    GaussianProblem prob = scaled_problem(shift);
    double euler = observed_order(prob, SamplerKind::Euler, shift, 16, 32);
    EXPECT_GT(euler, 0.85) << shift;
    EXPECT_LT(euler, 1.15) << shift;
    EXPECT_GT(observed_order(prob, SamplerKind::UniPC, shift, 16, 32), 1.5) << shift;
    EXPECT_GT(observed_order(prob, SamplerKind::DPMpp2M, shift, 16, 32), 1.5) << shift;
  }
}

TEST(SamplingSamplers, HigherOrderBeatsEulerAtFiftySteps) {
  for (double shift : {1.0, 5.0}) {
    GaussianProblem prob = scaled_problem(shift);
    double eu = prob.run(SamplerKind::Euler, 50, shift);
    double un = prob.run(SamplerKind::UniPC, 50, shift);
    double dp = prob.run(SamplerKind::DPMpp2M, 50, shift);
    std::printf("    scaled data, 50 steps, shift %.0f: euler %.3e unipc %.3e dpmpp2m %.3e\n",
                shift, eu, un, dp);
    EXPECT_LT(un, eu / 20) << shift;
    EXPECT_LT(dp, eu / 5) << shift;
  }
  GaussianProblem mix = mixed_problem();
  for (double shift : {1.0, 5.0}) {
    double eu = mix.run(SamplerKind::Euler, 50, shift);
    double un = mix.run(SamplerKind::UniPC, 50, shift);
    std::printf("    mixed data, 50 steps, shift %.0f: euler %.3e unipc %.3e\n", shift, eu, un);
    EXPECT_LT(un, eu / 3) << shift;
  }
}

}  // namespace
