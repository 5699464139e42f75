// lr_schedule.cpp: see lr_schedule.h.
#include "lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace cnnc::rt {

double LrSchedule::at(int epoch) const {
  if (warmup > 0 && epoch < warmup) {
    // LinearLR(start_factor=warmupStart, end_factor=1, total_iters=warmup).
    double f = warmupStart + (1.0 - warmupStart) * epoch / warmup;
    return lr * f;
  }
  int e = epoch - std::max(0, warmup);
  if (kind == "step") return lr * std::pow(gamma, e / std::max(1, stepSize));
  if (kind == "multistep") {
    int passed = (int)std::count_if(milestones.begin(), milestones.end(), [&](int m) { return m <= e; });
    return lr * std::pow(gamma, passed);
  }
  if (kind == "cosine") return etaMin + (lr - etaMin) * (1 + std::cos(M_PI * e / std::max(1, tMax))) / 2;
  return lr;
}

bool LrSchedule::validate(std::string& err) const {
  if (kind != "constant" && kind != "step" && kind != "multistep" && kind != "cosine") {
    err = "unknown schedule '" + kind + "': use constant, step, multistep or cosine";
    return false;
  }
  if (!(lr > 0)) { err = "the learning rate must be positive"; return false; }
  if (kind == "step" && stepSize < 1) { err = "--step-size must be at least 1"; return false; }
  if (warmup < 0 || !(warmupStart > 0 && warmupStart <= 1)) { err = "warmup epochs must be >= 0 and the start factor in (0, 1]"; return false; }
  return true;
}

}  // namespace cnnc::rt
