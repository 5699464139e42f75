// lr_schedule.h: learning-rate schedules with torch.optim.lr_scheduler's values, in closed form.
//
// A schedule is a function of a position t = 0, 1, 2, ... counted in its unit:
//   per epoch (default)      t = epoch                                  (scheduler.step() once per epoch)
//   per iteration            t = epoch * itersPerEpoch + iterInEpoch    (scheduler.step() after every batch)
// epoch and iterInEpoch count from 0. The value at t is the lr of every update made at t; with torch,
// the lr in optimizer.param_groups after t calls of scheduler.step(). stepSize, milestones, tMax and
// warmup are counted in the same unit.
//
// Without warmup (W = 0), base lr L, s = t:
//   constant    L
//   step        L * gamma^floor(s / stepSize)                          StepLR(step_size, gamma)
//   multistep   L * gamma^(number of milestones m with m <= s)         MultiStepLR(milestones, gamma)
//   cosine      etaMin + (L - etaMin) * (1 + cos(pi * s / tMax)) / 2   CosineAnnealingLR(T_max, eta_min)
//               (periodic past tMax, as torch's: it rises back to L at s = 2*tMax)
// With warmup W > 0 and start factor f (0 < f <= 1):
//   t <  W      L * (f + (1 - f) * t / W)                              LinearLR(start_factor=f, total_iters=W)
//   t >= W      the schedule above at s = t - W                        SequentialLR([LinearLR, sched], milestones=[W])
// so after warmup the schedule restarts at L: step, milestones and tMax count from the end of the
// warmup (for cosine to reach etaMin at the end of E epochs, use tMax = E - W).
//
// torch computes most of these recursively (lr_t = lr_{t-1} * factor); the closed forms above agree
// with it to a few units in the last place of a double (tests/unit/optim_test.cpp checks 1e-12).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace cnnc::rt {

struct LrSchedule {
  std::string kind = "constant";  // constant, step, multistep, cosine
  double lr = 0.01;               // base learning rate L
  double gamma = 0.1;             // step, multistep
  int stepSize = 30;              // step
  std::vector<int> milestones;    // multistep (any order; repeats multiply gamma in again, as torch)
  int tMax = 100;                 // cosine
  double etaMin = 0;              // cosine
  int warmup = 0;                 // W; 0 = none
  double warmupStart = 0.1;       // f
  bool perIteration = false;      // unit of t (see above)

  // The lr at position t in the schedule's unit (t < 0 counts as 0).
  double at(int64_t t) const;
  // The lr for batch iterInEpoch (0-based) of epoch `epoch` (0-based) when an epoch has
  // itersPerEpoch batches; per-epoch schedules ignore iterInEpoch and itersPerEpoch.
  double at(int64_t epoch, int64_t iterInEpoch, int64_t itersPerEpoch) const;
  // Checks the settings (message names the field); call before at().
  bool validate(std::string& err) const;
  // One line for logs, e.g. "cosine(lr=0.1, tMax=27, etaMin=0.0001) after 3 epochs of linear warmup from 0.1x".
  std::string describe() const;
};

}  // namespace cnnc::rt
