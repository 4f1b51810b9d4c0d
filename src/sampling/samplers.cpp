// Flow-matching ODE samplers: Euler, DPM++ 2M and UniPC (bh2, order 2). The formulas, the
// schedule conventions and the one deliberate deviation from diffusers (history points with
// infinite lambda drop the order instead of producing NaN) are documented in samplers.h.
//
// Implementation notes:
//  * Each update is a linear combination of a few fp32 tensors with double coefficients; the
//    coefficients are computed once per step, the sum per element in double, stored as fp32.
//  * Data predictions D = x - sigma v are stored as fp32 tensors (they are the multistep
//    history); at most two are kept.
//  * The UniPC coefficients use phi functions phi_k(z) = sum_j z^j / (j + k)!, evaluated by
//    their series for small |z| where the closed forms cancel catastrophically.
#include "sampling/samplers.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <utility>

#include "core/error.h"

namespace raylight {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Half log-SNR of the flow path: log((1 - sigma) / sigma); -inf at 1, +inf at 0.
double lambda_of(double sigma) {
  if (sigma >= 1.0) return -kInf;
  if (sigma <= 0.0) return kInf;
  return std::log1p(-sigma) - std::log(sigma);
}

// out = sum_k c[k] * t[k], elementwise in double. Terms with coefficient 0 are skipped (so
// 0 * inf never appears from a term that is mathematically absent).
struct Term {
  double c;
  const float* p;
};

Tensor combine(const Shape& shape, std::initializer_list<Term> terms_in) {
  std::array<Term, 4> terms{};
  int nt = 0;
  for (const Term& t : terms_in)
    if (t.c != 0.0) terms[nt++] = t;
  Tensor out = Tensor::empty(shape);
  float* o = out.f32();
  const int64_t n = out.numel();
  switch (nt) {
    case 0:
      for (int64_t i = 0; i < n; ++i) o[i] = 0.0f;
      break;
    case 1:
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<float>(terms[0].c * terms[0].p[i]);
      break;
    case 2:
      for (int64_t i = 0; i < n; ++i)
        o[i] = static_cast<float>(terms[0].c * terms[0].p[i] + terms[1].c * terms[1].p[i]);
      break;
    case 3:
      for (int64_t i = 0; i < n; ++i)
        o[i] = static_cast<float>(terms[0].c * terms[0].p[i] + terms[1].c * terms[1].p[i] +
                                  terms[2].c * terms[2].p[i]);
      break;
    default:
      for (int64_t i = 0; i < n; ++i)
        o[i] = static_cast<float>(terms[0].c * terms[0].p[i] + terms[1].c * terms[1].p[i] +
                                  terms[2].c * terms[2].p[i] + terms[3].c * terms[3].p[i]);
      break;
  }
  return out;
}

// Calls the model and checks what it returned.
Tensor call_model(const VelocityFn& model, const Tensor& x, double sigma) {
  Tensor v = model(x, sigma);
  if (!v.defined() || v.numel() != x.numel() || v.shape() != x.shape())
    fail("sampler: the model returned a velocity of shape ", shape_str(v.shape()),
         " for a sample of shape ", shape_str(x.shape()), " at sigma ", sigma);
  return v.to_f32();
}

// The step's result through the caller's fix, on a copy no history entry shares (x may be
// the data prediction just kept as history).
void pin(Tensor& x, const SampleFix& fix) {
  if (!fix) return;
  x = x.clone();
  fix(x);
}

// D = x - sigma v.
Tensor data_prediction(const Tensor& x, const Tensor& v, double sigma) {
  return combine(x.shape(), {{1.0, x.f32()}, {-sigma, v.f32()}});
}

void check_sigmas(const std::vector<double>& sigmas) {
  if (sigmas.size() < 2)
    fail("sampler: need at least 2 sigmas (one step), got ", sigmas.size());
  for (size_t i = 0; i < sigmas.size(); ++i) {
    double s = sigmas[i];
    if (!std::isfinite(s) || s < 0.0 || s > 1.0)
      fail("sampler: sigma ", i, " = ", s, " is outside [0, 1]");
    if (i > 0 && !(s < sigmas[i - 1]))
      fail("sampler: sigmas must be strictly decreasing, but sigma ", i, " = ", s,
           " follows ", sigmas[i - 1]);
  }
}

// phi_k(z) = sum_{j>=0} z^j / (j + k)!  for k = 1, 2, 3 (phi_1(z) = expm1(z) / z).
struct Phi {
  double p1, p2, p3;
};

Phi phi_functions(double z) {
  Phi f;
  if (std::fabs(z) < 0.5) {
    // Series; 25 terms reach double precision for |z| < 0.5.
    f = {0.0, 0.0, 0.0};
    double term1 = 1.0, term2 = 0.5, term3 = 1.0 / 6.0;  // z^j/(j+k)! at j = 0
    for (int j = 0; j < 25; ++j) {
      f.p1 += term1;
      f.p2 += term2;
      f.p3 += term3;
      term1 *= z / (j + 2);
      term2 *= z / (j + 3);
      term3 *= z / (j + 4);
    }
  } else {
    f.p1 = std::expm1(z) / z;
    f.p2 = (f.p1 - 1.0) / z;
    f.p3 = (f.p2 - 0.5) / z;
  }
  return f;
}

// ---------------------------------------------------------------------------------------
// Euler

Tensor run_euler(const Tensor& x0, const std::vector<double>& sigmas, const VelocityFn& model,
                 const StepCallback& on_step, const SampleFix& fix) {
  const int steps = static_cast<int>(sigmas.size()) - 1;
  Tensor x = x0;
  for (int k = 0; k < steps; ++k) {
    Tensor v = call_model(model, x, sigmas[k]);
    x = combine(x.shape(), {{1.0, x.f32()}, {sigmas[k + 1] - sigmas[k], v.f32()}});
    pin(x, fix);
    if (on_step) on_step(k + 1, steps);
  }
  return x;
}

// ---------------------------------------------------------------------------------------
// DPM++ 2M

Tensor run_dpmpp2m(const Tensor& x0, const std::vector<double>& sigmas, const VelocityFn& model,
                   const StepCallback& on_step, const SampleFix& fix) {
  const int steps = static_cast<int>(sigmas.size()) - 1;
  Tensor x = x0;
  Tensor d_prev;
  for (int k = 0; k < steps; ++k) {
    const double s = sigmas[k], s_next = sigmas[k + 1];
    Tensor v = call_model(model, x, s);
    Tensor d = data_prediction(x, v, s);
    const double lam = lambda_of(s), lam_next = lambda_of(s_next);
    const bool second_order = k > 0 && s_next > 0.0 && std::isfinite(lambda_of(sigmas[k - 1]));
    if (s_next == 0.0) {
      x = d;  // alpha_next = 1, expm1(-inf) = -1, sigma_next / sigma = 0
    } else {
      const double h = lam_next - lam;  // +inf when s == 1
      const double cx = s_next / s;
      const double cd = -(1.0 - s_next) * std::expm1(-h);
      if (second_order) {
        const double h_last = lam - lambda_of(sigmas[k - 1]);
        const double r = h_last / h;
        const double w = 1.0 / (2.0 * r);
        x = combine(x.shape(),
                    {{cx, x.f32()}, {cd * (1.0 + w), d.f32()}, {-cd * w, d_prev.f32()}});
      } else {
        x = combine(x.shape(), {{cx, x.f32()}, {cd, d.f32()}});
      }
    }
    d_prev = std::move(d);
    pin(x, fix);
    if (on_step) on_step(k + 1, steps);
  }
  return x;
}

// ---------------------------------------------------------------------------------------
// UniPC (bh2, order 2, x0 prediction)

Tensor run_unipc(const Tensor& x0, const std::vector<double>& sigmas, const VelocityFn& model,
                 const StepCallback& on_step, const SampleFix& fix) {
  const int steps = static_cast<int>(sigmas.size()) - 1;
  Tensor x = x0;
  Tensor last_sample;       // the sample the previous predictor started from
  Tensor m_prev, m_prev2;   // data predictions at sigmas[k-1] and sigmas[k-2]
  int last_order = 0;       // order of the previous predictor step

  for (int k = 0; k < steps; ++k) {
    const double s = sigmas[k];
    Tensor v = call_model(model, x, s);
    Tensor m = data_prediction(x, v, s);

    // UniC: correct x (the predictor's result at sigmas[k]) with the new model output.
    if (k > 0) {
      const double s0 = sigmas[k - 1];
      const double lam_t = lambda_of(s), lam_s0 = lambda_of(s0);
      const double h = lam_t - lam_s0;  // finite unless s0 == 1, then +inf
      const double alpha_t = 1.0 - s;
      const double e = std::expm1(-h);  // h*phi_1 with hh = -h; also B_h for bh2
      int order = last_order;
      if (order == 2 && !(k >= 2 && std::isfinite(lambda_of(sigmas[k - 2])))) order = 1;
      const double cx = s / s0;
      const double cm0 = -alpha_t * e;  // x_t_ = cx * last_sample + cm0 * m0
      if (order == 1) {
        // x_t = x_t_ - alpha_t B_h * 0.5 * (m - m0)
        const double c = -alpha_t * e * 0.5;
        x = combine(x.shape(),
                    {{cx, last_sample.f32()}, {cm0 - c, m_prev.f32()}, {c, m.f32()}});
      } else {
        const double r1 = (lambda_of(sigmas[k - 2]) - lam_s0) / h;
        const Phi f = phi_functions(-h);
        const double b1 = f.p2 / f.p1, b2 = 2.0 * f.p3 / f.p1;
        const double rho0 = (b1 - b2) / (1.0 - r1);
        const double rho1 = (b2 - r1 * b1) / (1.0 - r1);
        // x_t = x_t_ - alpha_t B_h (rho0 (m_prev2 - m0) / r1 + rho1 (m - m0))
        const double g = -alpha_t * e;
        const double c2 = g * rho0 / r1;  // coefficient of m_prev2
        const double c1 = g * rho1;       // coefficient of m
        x = combine(x.shape(), {{cx, last_sample.f32()},
                                {cm0 - c2 - c1, m_prev.f32()},
                                {c2, m_prev2.f32()},
                                {c1, m.f32()}});
      }
    }

    // Shift the history.
    m_prev2 = std::move(m_prev);
    m_prev = m;
    last_sample = x;

    // UniP: predict the sample at sigmas[k+1].
    int order = (k == 0 || k == steps - 1) ? 1 : 2;
    if (order == 2 && !std::isfinite(lambda_of(sigmas[k - 1]))) order = 1;
    const double s_next = sigmas[k + 1];
    const double lam_t = lambda_of(s_next), lam_s0 = lambda_of(s);
    const double h = lam_t - lam_s0;  // +inf when s_next == 0 or s == 1
    const double alpha_t = 1.0 - s_next;
    const double e = std::expm1(-h);
    const double cx = s_next / s;
    const double cm0 = -alpha_t * e;
    if (s_next == 0.0) {
      x = m;  // order 1 to sigma 0 is exactly the data prediction
    } else if (order == 1) {
      x = combine(x.shape(), {{cx, x.f32()}, {cm0, m.f32()}});
    } else {
      // x_t = x_t_ - alpha_t B_h * 0.5 * (m_prev2 - m0) / r1, m_prev2 now holds sigmas[k-1]
      const double r1 = (lambda_of(sigmas[k - 1]) - lam_s0) / h;
      const double c = -alpha_t * e * 0.5 / r1;
      x = combine(x.shape(), {{cx, x.f32()}, {cm0 - c, m.f32()}, {c, m_prev2.f32()}});
    }
    last_order = order;
    pin(x, fix);
    if (on_step) on_step(k + 1, steps);
  }
  return x;
}

}  // namespace

bool sampler_from_name(const std::string& name, SamplerKind* out) {
  if (name == "euler") {
    *out = SamplerKind::Euler;
  } else if (name == "unipc") {
    *out = SamplerKind::UniPC;
  } else if (name == "dpmpp2m") {
    *out = SamplerKind::DPMpp2M;
  } else {
    return false;
  }
  return true;
}

std::string sampler_name(SamplerKind k) {
  switch (k) {
    case SamplerKind::Euler: return "euler";
    case SamplerKind::UniPC: return "unipc";
    case SamplerKind::DPMpp2M: return "dpmpp2m";
  }
  return "unknown";
}

Tensor sample_flow(SamplerKind kind, const Tensor& x, const std::vector<double>& sigmas,
                   const VelocityFn& model, const StepCallback& on_step, const SampleFix& fix) {
  check_sigmas(sigmas);
  if (!model) fail("sample_flow: no model callback");
  if (!x.defined()) fail("sample_flow: undefined input sample");
  Tensor x32 = x.to_f32();
  // A non-finite velocity poisons every later step: stop at the first one and say where
  // (a huge --cfg used to run to the end and write an all-NaN latent with exit 0).
  const VelocityFn checked = [&](const Tensor& xt, double sigma) {
    Tensor v = model(xt, sigma).to_f32();
    const float* p = v.f32();
    for (int64_t i = 0; i < v.numel(); ++i)
      if (!std::isfinite(p[i])) {
        const size_t step = std::find(sigmas.begin(), sigmas.end(), sigma) - sigmas.begin();
        fail("sampling: the velocity at step ", step + 1, " of ", sigmas.size() - 1, " (sigma ",
             sigma, ") is not finite (element ", i, " is ", p[i],
             "): the guidance scale, shift or inputs are too extreme");
      }
    return v;
  };
  Tensor out;
  switch (kind) {
    case SamplerKind::Euler: out = run_euler(x32, sigmas, checked, on_step, fix); break;
    case SamplerKind::UniPC: out = run_unipc(x32, sigmas, checked, on_step, fix); break;
    case SamplerKind::DPMpp2M: out = run_dpmpp2m(x32, sigmas, checked, on_step, fix); break;
    default: fail("sample_flow: unknown sampler kind ", static_cast<int>(kind));
  }
  const float* p = out.f32();
  for (int64_t i = 0; i < out.numel(); ++i)
    if (!std::isfinite(p[i]))
      fail("sampling: the sampled latent is not finite (element ", i, " is ", p[i],
           "): the guidance scale, shift or inputs are too extreme");
  return out;
}

}  // namespace raylight
