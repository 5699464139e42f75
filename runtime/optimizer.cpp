// optimizer.cpp: see optimizer.h. Arithmetic is float32 in torch's order of operations, so results
// agree with torch.optim to float32 rounding.
#include "optimizer.h"

#include <cmath>

namespace cnnc::rt {

bool validateOptimizer(const OptimizerConfig& c, std::string& err) {
  if (c.kind != "sgd" && c.kind != "adam" && c.kind != "adamw") { err = "unknown optimizer '" + c.kind + "': use sgd, adam or adamw"; return false; }
  if (c.momentum < 0 || c.weightDecay < 0 || c.dampening < 0) { err = "momentum, dampening and weight decay must not be negative"; return false; }
  if (c.nesterov && (c.momentum <= 0 || c.dampening != 0)) { err = "Nesterov momentum needs momentum > 0 and dampening = 0"; return false; }
  if (!(c.beta1 >= 0 && c.beta1 < 1 && c.beta2 >= 0 && c.beta2 < 1)) { err = "Adam betas must be in [0, 1)"; return false; }
  if (!(c.eps > 0)) { err = "Adam eps must be positive"; return false; }
  return true;
}

void Optimizer::update(const std::string& name, std::vector<float>& w, const std::vector<float>& grad, double lrD) {
  const float lr = (float)lrD, wd = (float)cfg_.weightDecay;
  const size_t n = w.size();
  if (cfg_.kind == "sgd") {
    const float mu = (float)cfg_.momentum, damp = (float)cfg_.dampening;
    std::vector<float>* b = nullptr;
    bool first = false;
    if (mu != 0) {
      auto it = buf_.find(name + ".momentum_buffer");
      first = it == buf_.end();
      b = &buf_[name + ".momentum_buffer"];
      if (first) b->assign(n, 0.0f);
    }
    for (size_t i = 0; i < n; ++i) {
      float g = grad[i];
      if (wd != 0) g = g + wd * w[i];
      if (b) {
        float& bi = (*b)[i];
        bi = first ? g : mu * bi + (1 - damp) * g;
        g = cfg_.nesterov ? g + mu * bi : bi;
      }
      w[i] = w[i] - lr * g;
    }
    return;
  }
  // Adam / AdamW.
  const float b1 = (float)cfg_.beta1, b2 = (float)cfg_.beta2, eps = (float)cfg_.eps;
  auto& m = buf_[name + ".exp_avg"];
  auto& v = buf_[name + ".exp_avg_sq"];
  if (m.empty()) { m.assign(n, 0.0f); v.assign(n, 0.0f); }
  std::vector<float>* vmax = nullptr;
  if (cfg_.amsgrad) {
    vmax = &buf_[name + ".max_exp_avg_sq"];
    if (vmax->empty()) vmax->assign(n, 0.0f);
  }
  const double t = (double)(steps_ + 1);
  const float bc1 = (float)(1 - std::pow((double)b1, t));
  const float bc2 = (float)(1 - std::pow((double)b2, t));
  const float stepSize = lr / bc1;
  const float bc2Sqrt = std::sqrt(bc2);
  bool decoupled = cfg_.kind == "adamw";
  for (size_t i = 0; i < n; ++i) {
    if (decoupled) w[i] = w[i] * (1 - lr * wd);
    float g = grad[i];
    if (!decoupled && wd != 0) g = g + wd * w[i];
    m[i] = m[i] * b1 + (1 - b1) * g;  // torch: exp_avg.mul_(b1).add_(g, alpha=1-b1)
    v[i] = v[i] * b2 + (1 - b2) * g * g;
    float vv = v[i];
    if (vmax) { (*vmax)[i] = std::max((*vmax)[i], v[i]); vv = (*vmax)[i]; }
    float denom = std::sqrt(vv) / bc2Sqrt + eps;
    w[i] = w[i] - stepSize * (m[i] / denom);
  }
}

std::map<std::string, std::vector<float>> Optimizer::state() const {
  std::map<std::string, std::vector<float>> s;
  for (const auto& [k, v] : buf_) s["optim." + k] = v;
  return s;
}

bool Optimizer::loadState(const std::map<std::string, std::vector<float>>& s, int64_t steps, std::string& err) {
  buf_.clear();
  for (const auto& [k, v] : s) {
    if (k.rfind("optim.", 0) != 0) continue;
    buf_[k.substr(6)] = v;
  }
  if (steps < 0) { err = "optimizer step count is negative"; return false; }
  steps_ = steps;
  return true;
}

}  // namespace cnnc::rt
