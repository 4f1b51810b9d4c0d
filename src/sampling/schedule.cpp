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

std::vector<double> cut_schedule(const std::vector<double>& sigmas, int start_step, int end_step, bool leftover_noise) {
  if (start_step < 0 || end_step < 0) fail("start and end steps must not be negative, got ", start_step, " and ", end_step);
  std::vector<double> out = sigmas;
  const size_t steps = out.empty() ? 0 : out.size() - 1;
  if (static_cast<size_t>(end_step) < steps) {
    out.resize(static_cast<size_t>(end_step) + 1);
    if (!leftover_noise) out.back() = 0.0;
  }
  if (static_cast<size_t>(start_step) + 1 >= out.size()) return {};
  out.erase(out.begin(), out.begin() + start_step);
  return out;
}

}  // namespace raylight
