// train.h: one training step over a training plan: forward, loss, backward (the compiled
// kernels), then the batch-norm running statistics, as PyTorch updates them in train mode.
// Parameter updates are the optimizer's (optim.h); `sgdUpdate` is the plain rule `step` uses.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "executor.h"
#include "plan.h"
#include "weights.h"

namespace cnnc::rt {

class Trainer {
public:
  // Binds the plan's constants to `w` (updated in place) and to this trainer's gradients.
  bool init(const Plan& trainPlan, const KernelEntry* table, int count, Weights& w, std::string& err);
  // Runs one step on n images (NCHW) with integer class labels. Afterwards grads() holds
  // d(mean loss)/d(param) and the BN running statistics of `w` have been updated.
  bool step(const float* input, const int64_t* labels, int64_t n, uint64_t stepSeed, double& meanLoss, std::string& err);
  // Gradient of parameter i (empty for buffers such as running_mean).
  const std::vector<float>& grad(size_t i) const { return grads_[i]; }
  std::vector<std::vector<float>>& grads() { return grads_; }
  double labelSmoothing = 0.0;
  Executor& executor() { return ex_; }

private:
  const Plan* plan_ = nullptr;
  Weights* w_ = nullptr;
  Executor ex_;
  std::vector<std::vector<float>> grads_;  // per param
  std::vector<std::vector<float>> owned_;  // per constant: stats, dparams, zeros, eps
  std::vector<std::vector<int32_t>> seeds_;
};

// w -= lr * grad for every trainable parameter.
void sgdUpdate(const Plan& p, Weights& w, const std::vector<std::vector<float>>& grads, double lr);

}  // namespace cnnc::rt
