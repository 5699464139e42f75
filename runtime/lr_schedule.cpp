// lr_schedule.cpp: see lr_schedule.h. The closed forms are evaluated in torch's order of
// operations (_get_closed_form_lr of each scheduler).
#include "lr_schedule.h"

#include <cmath>
#include <sstream>

namespace cnnc::rt {

double LrSchedule::at(int64_t t) const {
  if (t < 0) t = 0;
  if (warmup > 0 && t < warmup) {
    // LinearLR: base_lr * (start_factor + (end_factor - start_factor) * min(total_iters, t) / total_iters)
    return lr * (warmupStart + (1.0 - warmupStart) * (double)t / (double)warmup);
  }
  const int64_t s = t - (warmup > 0 ? warmup : 0);
  if (kind == "step") return lr * std::pow(gamma, (double)(s / (stepSize > 0 ? stepSize : 1)));
  if (kind == "multistep") {
    int passed = 0;
    for (int m : milestones) passed += m <= s ? 1 : 0;  // bisect_right over the sorted milestones
    return lr * std::pow(gamma, (double)passed);
  }
  if (kind == "cosine") {
    const double T = tMax > 0 ? tMax : 1;
    return etaMin + (lr - etaMin) * (1 + std::cos(M_PI * (double)s / T)) / 2;
  }
  return lr;
}

double LrSchedule::at(int64_t epoch, int64_t iterInEpoch, int64_t itersPerEpoch) const {
  if (!perIteration) return at(epoch);
  return at(epoch * itersPerEpoch + iterInEpoch);
}

bool LrSchedule::validate(std::string& err) const {
  auto bad = [&](const std::string& m) {
    err = "learning-rate schedule: " + m;
    return false;
  };
  if (kind != "constant" && kind != "step" && kind != "multistep" && kind != "cosine")
    return bad("unknown schedule '" + kind + "': use constant, step, multistep or cosine");
  if (!(std::isfinite(lr) && lr > 0)) return bad("the learning rate must be a finite number > 0");
  if ((kind == "step" || kind == "multistep") && !(std::isfinite(gamma) && gamma > 0))
    return bad("gamma must be a finite number > 0");
  if (kind == "step" && stepSize < 1) return bad("the step size must be at least 1");
  if (kind == "multistep") {
    if (milestones.empty()) return bad("multistep needs at least one milestone");
    for (int m : milestones)
      if (m < 0) return bad("milestones must not be negative");
  }
  if (kind == "cosine") {
    if (tMax < 1) return bad("tMax must be at least 1");
    if (!(std::isfinite(etaMin) && etaMin >= 0)) return bad("etaMin must be a finite number >= 0");
  }
  if (warmup < 0) return bad("warmup must not be negative");
  if (warmup > 0 && !(warmupStart > 0 && warmupStart <= 1)) return bad("the warmup start factor must be in (0, 1]");
  return true;
}

std::string LrSchedule::describe() const {
  std::ostringstream o;
  o << kind << "(lr=" << lr;
  if (kind == "step") o << ", stepSize=" << stepSize << ", gamma=" << gamma;
  if (kind == "multistep") {
    o << ", milestones=[";
    for (size_t i = 0; i < milestones.size(); ++i) o << (i ? "," : "") << milestones[i];
    o << "], gamma=" << gamma;
  }
  if (kind == "cosine") o << ", tMax=" << tMax << ", etaMin=" << etaMin;
  o << ")";
  const char* unit = perIteration ? "iterations" : "epochs";
  if (warmup > 0) o << " after " << warmup << " " << unit << " of linear warmup from " << warmupStart << "x";
  o << ", stepped per " << (perIteration ? "iteration" : "epoch");
  return o.str();
}

}  // namespace cnnc::rt
