// Flow-matching schedule; see schedule.h for the conventions and why this shape was chosen.
#include "sampling/schedule.h"

#include <cmath>

#include "core/error.h"

namespace raylight {

double flow_shift(double sigma, double shift) {
  return shift * sigma / (1.0 + (shift - 1.0) * sigma);
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
  return sigmas;
}

}  // namespace raylight
