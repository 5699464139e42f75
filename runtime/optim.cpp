// optim.cpp: see optim.h. Every line of an update names the torch 1.13 statement it reproduces
// (torch/optim/sgd.py _single_tensor_sgd, adam.py _single_tensor_adam, adamw.py _single_tensor_adamw).
#include "optim.h"

#include <cmath>
#include <set>

namespace cnnc::rt {

namespace {

bool finite(double x) { return std::isfinite(x); }

// torch.maximum: NaN if either is NaN.
inline float nanMax(float a, float b) {
  if (a != a) return a;
  if (b != b) return b;
  return a < b ? b : a;
}

// torch stores the Adam step as a float32 tensor; counts above 2^24 are not exact there either.
constexpr double kMaxExactStep = 16777216.0;

}  // namespace

bool parseOptimKind(const std::string& s, OptimKind& k, std::string& err) {
  if (s == "sgd") k = OptimKind::SGD;
  else if (s == "adam") k = OptimKind::Adam;
  else if (s == "adamw") k = OptimKind::AdamW;
  else {
    err = "unknown optimizer '" + s + "': use sgd, adam or adamw";
    return false;
  }
  return true;
}

const char* optimKindName(OptimKind k) {
  switch (k) {
    case OptimKind::SGD: return "sgd";
    case OptimKind::Adam: return "adam";
    case OptimKind::AdamW: return "adamw";
  }
  return "?";
}

OptimConfig defaultOptimConfig(OptimKind k) {
  OptimConfig c;
  c.kind = k;
  if (k == OptimKind::AdamW) c.weightDecay = 1e-2;
  return c;
}

bool validateOptimConfig(const OptimConfig& c, std::string& err) {
  const char* name = optimKindName(c.kind);
  if (c.kind != OptimKind::SGD && c.kind != OptimKind::Adam && c.kind != OptimKind::AdamW) {
    err = "unknown optimizer kind";
    return false;
  }
  if (!finite(c.weightDecay) || c.weightDecay < 0) {
    err = std::string(name) + ": weight decay must be a finite number >= 0";
    return false;
  }
  if (c.kind == OptimKind::SGD) {
    if (!finite(c.momentum) || c.momentum < 0) { err = "sgd: momentum must be a finite number >= 0"; return false; }
    if (!finite(c.dampening)) { err = "sgd: dampening must be a finite number"; return false; }
    if (c.nesterov && (c.momentum <= 0 || c.dampening != 0)) {
      err = "sgd: Nesterov momentum requires a momentum > 0 and zero dampening";
      return false;
    }
    return true;
  }
  if (!(c.beta1 >= 0 && c.beta1 < 1) || !(c.beta2 >= 0 && c.beta2 < 1)) {
    err = std::string(name) + ": betas must be in [0, 1)";
    return false;
  }
  if (!finite(c.eps) || c.eps < 0) {
    err = std::string(name) + ": eps must be a finite number >= 0";
    return false;
  }
  return true;
}

std::string Optim::key(size_t i) const {
  return params_[i].name.empty() ? std::to_string(i) : params_[i].name;
}

std::vector<const char*> Optim::bufferNames() const {
  if (cfg_.kind == OptimKind::SGD) {
    if (cfg_.momentum != 0) return {"momentum_buffer"};
    return {};
  }
  if (cfg_.amsgrad) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  return {"exp_avg", "exp_avg_sq"};
}

bool Optim::init(const OptimConfig& c, std::vector<OptimParam> params, std::string& err) {
  if (!validateOptimConfig(c, err)) return false;
  std::set<std::string> keys;
  for (size_t i = 0; i < params.size(); ++i) {
    const OptimParam& p = params[i];
    std::string k = p.name.empty() ? std::to_string(i) : p.name;
    if (!p.data || !p.grad) {
      err = "optimizer parameter '" + k + "' has no " + (p.data ? "gradient" : "data");
      return false;
    }
    if (p.data->size() != p.grad->size()) {
      err = "optimizer parameter '" + k + "' has " + std::to_string(p.data->size()) + " values but a gradient of " +
            std::to_string(p.grad->size());
      return false;
    }
    if (!keys.insert(k).second) {
      err = "two optimizer parameters are named '" + k + "'";
      return false;
    }
  }
  cfg_ = c;
  params_ = std::move(params);
  slots_.assign(params_.size(), Slot());
  steps_ = 0;
  return true;
}

bool Optim::step(double lrD, std::string& err) {
  if (!finite(lrD) || lrD < 0) {
    err = "learning rate must be a finite number >= 0 (got " + std::to_string(lrD) + ")";
    return false;
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    if (params_[i].data->size() != params_[i].grad->size() || (steps_ > 0 && !slots_[i].buf0.empty() &&
                                                               slots_[i].buf0.size() != params_[i].data->size())) {
      err = "optimizer parameter '" + key(i) + "' changed size since the optimizer was set up";
      return false;
    }
  }
  const bool first = steps_ == 0;
  const double t = (double)(steps_ + 1);  // torch: step_t += 1 before the update

  if (cfg_.kind == OptimKind::SGD) {
    const double mu = cfg_.momentum;
    const float muF = (float)mu;
    const float oneMinusDamp = (float)(1.0 - cfg_.dampening);  // alpha=1 - dampening
    const float negLr = (float)(-lrD);                           // alpha=-lr
    for (size_t pi = 0; pi < params_.size(); ++pi) {
      float* w = params_[pi].data->data();
      const float* g = params_[pi].grad->data();
      const size_t n = params_[pi].data->size();
      const double wdD = params_[pi].decay ? cfg_.weightDecay : 0.0;
      const float wd = (float)wdD;
      std::vector<float>& buf = slots_[pi].buf0;
      if (mu != 0 && first) buf.assign(n, 0.0f);
      float* b = buf.data();
      for (size_t i = 0; i < n; ++i) {
        float d = g[i];
        if (wdD != 0) d = std::fma(w[i], wd, d);  // d_p = d_p.add(param, alpha=weight_decay)
        if (mu != 0) {
          if (first) b[i] = d;                     // buf = torch.clone(d_p)
          else {
            float m = b[i] * muF;                  // buf.mul_(momentum)
            b[i] = std::fma(d, oneMinusDamp, m);   //    .add_(d_p, alpha=1 - dampening)
          }
          d = cfg_.nesterov ? std::fma(b[i], muF, d)  // d_p = d_p.add(buf, alpha=momentum)
                            : b[i];                   // d_p = buf
        }
        w[i] = std::fma(d, negLr, w[i]);           // param.add_(d_p, alpha=-lr)
      }
    }
  } else {
    const bool decoupled = cfg_.kind == OptimKind::AdamW;
    const double b1 = cfg_.beta1, b2 = cfg_.beta2;
    const float b1F = (float)b1, b2F = (float)b2;
    const float oneMinusB1 = (float)(1.0 - b1);  // alpha=1 - beta1
    const float oneMinusB2 = (float)(1.0 - b2);  // value=1 - beta2
    const double bc1 = 1.0 - std::pow(b1, t);    // bias_correction1 = 1 - beta1 ** step
    const double bc2 = 1.0 - std::pow(b2, t);    // bias_correction2 = 1 - beta2 ** step
    const double stepSize = lrD / bc1;           // step_size = lr / bias_correction1
    const float negStepSize = (float)(-stepSize);  // value=-step_size
    const float bc2Sqrt = (float)std::sqrt(bc2);   // bias_correction2_sqrt = math.sqrt(...)
    const float eps = (float)cfg_.eps;
    for (size_t pi = 0; pi < params_.size(); ++pi) {
      float* w = params_[pi].data->data();
      const float* g = params_[pi].grad->data();
      const size_t n = params_[pi].data->size();
      const double wdD = params_[pi].decay ? cfg_.weightDecay : 0.0;
      const float wd = (float)wdD;
      const float decayFactor = (float)(1.0 - lrD * wdD);  // AdamW: param.mul_(1 - lr * weight_decay)
      Slot& s = slots_[pi];
      if (first) {
        s.buf0.assign(n, 0.0f);
        s.buf1.assign(n, 0.0f);
        if (cfg_.amsgrad) s.buf2.assign(n, 0.0f);
      }
      float* m = s.buf0.data();
      float* v = s.buf1.data();
      float* vmax = cfg_.amsgrad ? s.buf2.data() : nullptr;
      for (size_t i = 0; i < n; ++i) {
        float d = g[i];
        if (decoupled) {
          if (wdD != 0) w[i] = w[i] * decayFactor;
        } else if (wdD != 0) {
          d = std::fma(w[i], wd, d);                  // grad = grad.add(param, alpha=weight_decay)
        }
        m[i] = std::fma(d, oneMinusB1, m[i] * b1F);   // exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        v[i] = std::fma(oneMinusB2 * d, d, v[i] * b2F);  // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        float vv = v[i];
        if (vmax) vv = vmax[i] = nanMax(vmax[i], v[i]);  // torch.maximum(max_exp_avg_sqs[i], exp_avg_sq, out=...)
        float denom = std::sqrt(vv) / bc2Sqrt + eps;     // (x.sqrt() / bias_correction2_sqrt).add_(eps)
        w[i] = w[i] + (negStepSize * m[i]) / denom;      // param.addcdiv_(exp_avg, denom, value=-step_size)
      }
    }
  }
  ++steps_;
  return true;
}

void Optim::state(OptimState& out) const {
  std::vector<const char*> names = bufferNames();
  if (steps_ > 0) {
    for (size_t i = 0; i < params_.size(); ++i) {
      const std::vector<float>* bufs[3] = {&slots_[i].buf0, &slots_[i].buf1, &slots_[i].buf2};
      for (size_t b = 0; b < names.size(); ++b) out.emplace_back("optim." + key(i) + "." + names[b], *bufs[b]);
    }
  }
  out.emplace_back("optim.step", std::vector<float>{(float)steps_});
}

void Optim::state(std::map<std::string, std::vector<float>>& out) const {
  OptimState s;
  state(s);
  for (auto& [k, v] : s) out[k] = std::move(v);
}

bool Optim::loadState(const OptimState& in, std::string& err) {
  std::vector<std::pair<const std::string*, const std::vector<float>*>> v;
  for (const auto& [k, x] : in) v.emplace_back(&k, &x);
  return loadFrom(v, err);
}

bool Optim::loadState(const std::map<std::string, std::vector<float>>& in, std::string& err) {
  std::vector<std::pair<const std::string*, const std::vector<float>*>> v;
  for (const auto& [k, x] : in) v.emplace_back(&k, &x);
  return loadFrom(v, err);
}

bool Optim::loadFrom(const std::vector<std::pair<const std::string*, const std::vector<float>*>>& in, std::string& err) {
  const std::string kind = optimKindName(cfg_.kind);
  std::map<std::string, const std::vector<float>*> given;
  for (const auto& [k, x] : in) {
    if (k->rfind("optim.", 0) != 0) continue;
    if (!given.emplace(*k, x).second) {
      err = "optimizer state '" + *k + "' appears twice";
      return false;
    }
  }
  auto stepIt = given.find("optim.step");
  if (stepIt == given.end()) {
    err = "the checkpoint has no optimizer step count (optim.step)";
    return false;
  }
  const std::vector<float>& sv = *stepIt->second;
  if (sv.size() != 1 || !(sv[0] >= 0) || sv[0] > kMaxExactStep || std::floor(sv[0]) != sv[0]) {
    err = "optim.step must hold one whole number between 0 and 2^24";
    return false;
  }
  const int64_t steps = (int64_t)sv[0];
  given.erase(stepIt);

  std::vector<const char*> names = bufferNames();
  std::vector<Slot> slots(params_.size());
  if (steps > 0) {
    for (size_t i = 0; i < params_.size(); ++i) {
      std::vector<float>* bufs[3] = {&slots[i].buf0, &slots[i].buf1, &slots[i].buf2};
      for (size_t b = 0; b < names.size(); ++b) {
        std::string name = "optim." + key(i) + "." + names[b];
        auto it = given.find(name);
        if (it == given.end()) {
          err = "the checkpoint's " + kind + " state lacks '" + name +
                "' (was it saved with another optimizer or other parameters?)";
          return false;
        }
        if (it->second->size() != params_[i].data->size()) {
          err = "optimizer state '" + name + "' has " + std::to_string(it->second->size()) + " values; parameter '" + key(i) +
                "' has " + std::to_string(params_[i].data->size());
          return false;
        }
        *bufs[b] = *it->second;
        given.erase(it);
      }
    }
  }
  if (!given.empty()) {
    err = "the checkpoint has optimizer state '" + given.begin()->first + "' that this " + kind + " optimizer" +
          (steps == 0 ? " (at step 0)" : "") + " does not use (was it saved with another optimizer or other parameters?)";
    return false;
  }
  slots_ = std::move(slots);
  steps_ = steps;
  return true;
}

}  // namespace cnnc::rt
