// lr_schedule.h: learning-rate schedules, stepped once per epoch as torch.optim.lr_scheduler's
// epoch-based schedulers are (the value for epoch e, counted from 0):
//   constant:   lr
//   step:       lr * gamma^floor(e / stepSize)
//   multistep:  lr * gamma^(number of milestones <= e)
//   cosine:     etaMin + (lr - etaMin) * (1 + cos(pi * e / tMax)) / 2          (CosineAnnealingLR)
// With warmup W > 0 the first W epochs ramp linearly from lr*warmupStart to lr (LinearLR), and the
// schedule above then runs on e - W (SequentialLR).
#pragma once
#include <string>
#include <vector>

namespace cnnc::rt {

struct LrSchedule {
  std::string kind = "constant";  // constant, step, multistep, cosine
  double lr = 0.01;
  double gamma = 0.1;
  int stepSize = 30;
  std::vector<int> milestones;
  int tMax = 100;
  double etaMin = 0;
  int warmup = 0;
  double warmupStart = 0.1;

  double at(int epoch) const;
  bool validate(std::string& err) const;
};

}  // namespace cnnc::rt
