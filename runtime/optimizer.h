// optimizer.h: parameter updates with torch.optim's rules (PyTorch 1.13, single-tensor path), so
// a run in cnnc follows the same trajectory as one in PyTorch from the same gradients.
//
//   SGD:   g = grad + wd*w;  if momentum: b = (first step) g : mu*b + (1-dampening)*g;
//          g = nesterov ? g + mu*b : b;   w -= lr*g
//   Adam:  g = grad + wd*w;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
//          (amsgrad: vmax = max(vmax, v), used for v below)
//          w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
//   AdamW: w *= 1 - lr*wd first, then Adam without wd in g.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace cnnc::rt {

struct OptimizerConfig {
  std::string kind = "sgd";  // sgd, adam, adamw
  double momentum = 0, dampening = 0, weightDecay = 0;
  bool nesterov = false;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  bool amsgrad = false;
};

// Checks the settings as torch.optim does (e.g. Nesterov needs momentum and no dampening).
bool validateOptimizer(const OptimizerConfig& c, std::string& err);

class Optimizer {
public:
  explicit Optimizer(OptimizerConfig c) : cfg_(std::move(c)) {}
  // One update of parameter `name` (its data and gradient, equal sizes) with learning rate lr.
  // Call once per parameter per step, then finishStep().
  void update(const std::string& name, std::vector<float>& w, const std::vector<float>& grad, double lr);
  void finishStep() { ++steps_; }
  int64_t steps() const { return steps_; }
  // State for checkpoints: "optim.<param>.<buffer>" -> values, and the step count.
  std::map<std::string, std::vector<float>> state() const;
  bool loadState(const std::map<std::string, std::vector<float>>& s, int64_t steps, std::string& err);

private:
  OptimizerConfig cfg_;
  int64_t steps_ = 0;
  std::map<std::string, std::vector<float>> buf_;  // momentum_buffer, exp_avg, exp_avg_sq, max_exp_avg_sq
};

}  // namespace cnnc::rt
