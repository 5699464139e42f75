// optim.cpp: see optim.h. Every line of an update names the torch 1.13 statement it reproduces
// (torch/optim/sgd.py _single_tensor_sgd, adam.py _single_tensor_adam, adamw.py _single_tensor_adamw,
// rmsprop.py _single_tensor_rmsprop).
#include "optim.h"
#include "cores.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <set>
#include <thread>

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

// The update loops are elementwise, so vectors and threads change no result: each element sees
// the same float operations (std::fma is exact however it is computed). On x86 they are cloned for
// AVX-512 and AVX2 + FMA (else std::fma is a libm call per element) and built at -O3 (the -O2 cost
// model leaves them scalar). ResNet-18's training step at batch 8 (11.7M parameters, SGD with
// momentum) on the 2-core AMD EPYC (Zen 5): 328-332 -> 286-292 ms, same run.
#if defined(__x86_64__)
#define CNNC_UPDATE_LOOP __attribute__((optimize("O3"), target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CNNC_UPDATE_LOOP __attribute__((optimize("O3")))
#endif

struct SgdCoef {
  float wd, mu, oneMinusDamp, negLr;
  bool hasWd, hasMu, nesterov, first;
};

CNNC_UPDATE_LOOP void sgdRange(float* __restrict w, const float* __restrict g, float* __restrict b, size_t lo, size_t hi, SgdCoef c) {
  if (c.hasMu && !c.first && !c.nesterov && c.oneMinusDamp == 1.0f) {
    // The common case, without the branches, so that it vectorizes.
    if (c.hasWd) {
      for (size_t i = lo; i < hi; ++i) {
        float d = std::fma(w[i], c.wd, g[i]);
        b[i] = std::fma(d, 1.0f, b[i] * c.mu);
        w[i] = std::fma(b[i], c.negLr, w[i]);
      }
    } else {
      for (size_t i = lo; i < hi; ++i) {
        b[i] = std::fma(g[i], 1.0f, b[i] * c.mu);
        w[i] = std::fma(b[i], c.negLr, w[i]);
      }
    }
    return;
  }
  for (size_t i = lo; i < hi; ++i) {
    float d = g[i];
    if (c.hasWd) d = std::fma(w[i], c.wd, d);  // d_p = d_p.add(param, alpha=weight_decay)
    if (c.hasMu) {
      if (c.first) b[i] = d;                     // buf = torch.clone(d_p)
      else {
        float m = b[i] * c.mu;                   // buf.mul_(momentum)
        b[i] = std::fma(d, c.oneMinusDamp, m);   //    .add_(d_p, alpha=1 - dampening)
      }
      d = c.nesterov ? std::fma(b[i], c.mu, d)  // d_p = d_p.add(buf, alpha=momentum)
                     : b[i];                    // d_p = buf
    }
    w[i] = std::fma(d, c.negLr, w[i]);           // param.add_(d_p, alpha=-lr)
  }
}

struct AdamCoef {
  float wd, decayFactor, b1, b2, oneMinusB1, oneMinusB2, negStepSize, bc2Sqrt, eps;
  bool decoupled, hasWd;
};

CNNC_UPDATE_LOOP void adamRange(float* __restrict w, const float* __restrict g, float* __restrict m, float* __restrict v, float* __restrict vmax,
                                size_t lo, size_t hi, AdamCoef c) {
  for (size_t i = lo; i < hi; ++i) {
    float d = g[i];
    if (c.decoupled) {
      if (c.hasWd) w[i] = w[i] * c.decayFactor;
    } else if (c.hasWd) {
      d = std::fma(w[i], c.wd, d);                     // grad = grad.add(param, alpha=weight_decay)
    }
    m[i] = std::fma(d, c.oneMinusB1, m[i] * c.b1);      // exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
    v[i] = std::fma(c.oneMinusB2 * d, d, v[i] * c.b2);  // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    float vv = v[i];
    if (vmax) vv = vmax[i] = nanMax(vmax[i], v[i]);     // torch.maximum(max_exp_avg_sqs[i], exp_avg_sq, out=...)
    float denom = std::sqrt(vv) / c.bc2Sqrt + c.eps;    // (x.sqrt() / bias_correction2_sqrt).add_(eps)
    w[i] = w[i] + (c.negStepSize * m[i]) / denom;       // param.addcdiv_(exp_avg, denom, value=-step_size)
  }
}

struct RmspropCoef {
  float wd, alpha, oneMinusAlpha, eps, mu, negLr;
  bool hasWd;
};

// b (momentum_buffer) and a (grad_avg) are null when unused.
CNNC_UPDATE_LOOP void rmspropRange(float* __restrict w, const float* __restrict g, float* __restrict sq, float* __restrict b, float* __restrict a,
                                   size_t lo, size_t hi, RmspropCoef c) {
  for (size_t i = lo; i < hi; ++i) {
    float d = g[i];
    if (c.hasWd) d = std::fma(w[i], c.wd, d);                 // grad = grad.add(param, alpha=weight_decay)
    sq[i] = std::fma(c.oneMinusAlpha * d, d, sq[i] * c.alpha);  // square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
    float avg;
    if (a) {
      a[i] = std::fma(d, c.oneMinusAlpha, a[i] * c.alpha);     // grad_avg.mul_(alpha).add_(grad, alpha=1 - alpha)
      avg = std::sqrt(std::fma(-a[i], a[i], sq[i]));           // square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
    } else {
      avg = std::sqrt(sq[i]);                                  // square_avg.sqrt()
    }
    avg = avg + c.eps;                                         // avg.add_(eps)
    if (b) {
      b[i] = b[i] * c.mu + d / avg;                            // buf.mul_(momentum).addcdiv_(grad, avg)
      w[i] = std::fma(b[i], c.negLr, w[i]);                    // param.add_(buf, alpha=-lr)
    } else {
      w[i] = w[i] + (c.negLr * d) / avg;                       // param.addcdiv_(grad, avg, value=-lr)
    }
  }
}

// Runs fn(param, lo, hi) over every parameter's elements, in chunks spread over the threads this
// process may use (one thread for small models, where starting threads would cost more).
template <class F>
void forChunks(const std::vector<size_t>& sizes, F fn) {
  constexpr size_t kChunk = 1 << 16, kMinParallel = 1 << 20;
  std::vector<std::array<size_t, 3>> jobs;
  size_t total = 0;
  for (size_t p = 0; p < sizes.size(); ++p) {
    for (size_t lo = 0; lo < sizes[p]; lo += kChunk) jobs.push_back({p, lo, std::min(sizes[p], lo + kChunk)});
    total += sizes[p];
  }
  int threads = allowedCores();
  if (total < kMinParallel) threads = 1;
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t j; (j = next.fetch_add(1)) < jobs.size();) fn(jobs[j][0], jobs[j][1], jobs[j][2]);
  };
  std::vector<std::thread> ts;
  for (int t = 1; t < threads; ++t) ts.emplace_back(work);
  work();
  for (auto& t : ts) t.join();
}

}  // namespace

bool parseOptimKind(const std::string& s, OptimKind& k, std::string& err) {
  if (s == "sgd") k = OptimKind::SGD;
  else if (s == "adam") k = OptimKind::Adam;
  else if (s == "adamw") k = OptimKind::AdamW;
  else if (s == "rmsprop") k = OptimKind::RMSprop;
  else {
    err = "unknown optimizer '" + s + "': use sgd, adam, adamw or rmsprop";
    return false;
  }
  return true;
}

const char* optimKindName(OptimKind k) {
  switch (k) {
    case OptimKind::SGD: return "sgd";
    case OptimKind::Adam: return "adam";
    case OptimKind::AdamW: return "adamw";
    case OptimKind::RMSprop: return "rmsprop";
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
  if (c.kind != OptimKind::SGD && c.kind != OptimKind::Adam && c.kind != OptimKind::AdamW && c.kind != OptimKind::RMSprop) {
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
  if (c.kind == OptimKind::RMSprop) {
    if (!finite(c.momentum) || c.momentum < 0) { err = "rmsprop: momentum must be a finite number >= 0"; return false; }
    if (!(c.alpha >= 0 && c.alpha <= 1)) { err = "rmsprop: alpha must be in [0, 1]"; return false; }
    if (!finite(c.eps) || c.eps < 0) { err = "rmsprop: eps must be a finite number >= 0"; return false; }
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
  if (cfg_.kind == OptimKind::RMSprop) {
    std::vector<const char*> names{"square_avg"};
    if (cfg_.momentum > 0) names.push_back("momentum_buffer");
    if (cfg_.centered) names.push_back("grad_avg");
    return names;
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

  std::vector<size_t> sizes;
  for (const auto& p : params_) sizes.push_back(p.data->size());
  if (cfg_.kind == OptimKind::SGD) {
    const double mu = cfg_.momentum;
    std::vector<SgdCoef> coef;
    for (size_t pi = 0; pi < params_.size(); ++pi) {
      const double wdD = params_[pi].decay ? cfg_.weightDecay : 0.0;
      coef.push_back({(float)wdD, (float)mu, (float)(1.0 - cfg_.dampening) /* alpha=1 - dampening */, (float)(-lrD) /* alpha=-lr */,
                      wdD != 0, mu != 0, cfg_.nesterov, first});
      if (mu != 0 && first) slots_[pi].buf0.assign(sizes[pi], 0.0f);
    }
    forChunks(sizes, [&](size_t pi, size_t lo, size_t hi) {
      sgdRange(params_[pi].data->data(), params_[pi].grad->data(), slots_[pi].buf0.data(), lo, hi, coef[pi]);
    });
  } else if (cfg_.kind == OptimKind::RMSprop) {
    const bool hasMu = cfg_.momentum > 0;
    std::vector<RmspropCoef> coef;
    for (size_t pi = 0; pi < params_.size(); ++pi) {
      const double wdD = params_[pi].decay ? cfg_.weightDecay : 0.0;
      coef.push_back({(float)wdD, (float)cfg_.alpha, (float)(1.0 - cfg_.alpha) /* value=1 - alpha */, (float)cfg_.eps, (float)cfg_.momentum,
                      (float)(-lrD) /* alpha=-lr */, wdD != 0});
      Slot& s = slots_[pi];
      if (first) {
        s.buf0.assign(sizes[pi], 0.0f);
        if (hasMu) s.buf1.assign(sizes[pi], 0.0f);
        if (cfg_.centered) (hasMu ? s.buf2 : s.buf1).assign(sizes[pi], 0.0f);
      }
    }
    forChunks(sizes, [&](size_t pi, size_t lo, size_t hi) {
      Slot& s = slots_[pi];
      float* b = hasMu ? s.buf1.data() : nullptr;
      float* a = cfg_.centered ? (hasMu ? s.buf2 : s.buf1).data() : nullptr;
      rmspropRange(params_[pi].data->data(), params_[pi].grad->data(), s.buf0.data(), b, a, lo, hi, coef[pi]);
    });
  } else {
    const double b1 = cfg_.beta1, b2 = cfg_.beta2;
    const double bc1 = 1.0 - std::pow(b1, t);    // bias_correction1 = 1 - beta1 ** step
    const double bc2 = 1.0 - std::pow(b2, t);    // bias_correction2 = 1 - beta2 ** step
    const double stepSize = lrD / bc1;           // step_size = lr / bias_correction1
    std::vector<AdamCoef> coef;
    for (size_t pi = 0; pi < params_.size(); ++pi) {
      const double wdD = params_[pi].decay ? cfg_.weightDecay : 0.0;
      coef.push_back({(float)wdD, (float)(1.0 - lrD * wdD) /* AdamW: param.mul_(1 - lr * weight_decay) */, (float)b1, (float)b2,
                      (float)(1.0 - b1) /* alpha=1 - beta1 */, (float)(1.0 - b2) /* value=1 - beta2 */,
                      (float)(-stepSize) /* value=-step_size */, (float)std::sqrt(bc2) /* bias_correction2_sqrt */, (float)cfg_.eps,
                      cfg_.kind == OptimKind::AdamW, wdD != 0});
      Slot& s = slots_[pi];
      if (first) {
        s.buf0.assign(sizes[pi], 0.0f);
        s.buf1.assign(sizes[pi], 0.0f);
        if (cfg_.amsgrad) s.buf2.assign(sizes[pi], 0.0f);
      }
    }
    forChunks(sizes, [&](size_t pi, size_t lo, size_t hi) {
      Slot& s = slots_[pi];
      adamRange(params_[pi].data->data(), params_[pi].grad->data(), s.buf0.data(), s.buf1.data(), cfg_.amsgrad ? s.buf2.data() : nullptr, lo, hi,
                coef[pi]);
    });
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
