// Flow-matching schedule; see schedule.h for the conventions and why this shape was chosen.
#include "sampling/schedule.h"

#include <cmath>

#include "core/error.h"

namespace raylight {

double flow_shift(double sigma, double shift) {
  // shift*s / (shift*s + (1 - s)) equals shift*s / (1 + (shift - 1)*s), but never computes
  // 1 + (shift - 1) with a tiny shift, where it rounds to 0 at s = 1 (shift 1e-300 gave inf).
  const double a = shift * sigma;
  return a / (a + (1.0 - sigma));
}

std::vector<double> flow_sigmas(int steps, double shift) {
  if (steps < 1) fail("flow_sigmas: steps must be at least 1, got ", steps);
  if (!(shift > 0.0) || !std::isfinite(shift))
    fail("flow_sigmas: shift must be a positive finite number, got ", shift);
  std::vector<double> sigmas;
  sigmas.reserve(static_cast<size_t>(steps) + 1);
  for (int i = 0; i < steps; ++i) {
    double s = 1.0 - static_cast<double>(i) / static_cast<double>(steps);
    sigmas.push_back(flow_shift(s, shift));
  }
  sigmas.push_back(0.0);
  // An extreme shift squeezes neighbouring sigmas into one double: say so here, with the
  // option's words, rather than let the sampler find an unordered schedule.
  for (size_t i = 1; i < sigmas.size(); ++i)
    if (!(sigmas[i] < sigmas[i - 1]))
      fail("shift ", shift, " is too extreme for ", steps, " steps: sigmas ", i - 1, " and ", i,
           " both round to ", sigmas[i], "; use a shift nearer 1");
  return sigmas;
}

}  // namespace raylight
