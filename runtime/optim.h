// optim.h: parameter updates that follow torch.optim (PyTorch 1.13, its default single-tensor CPU
// path, foreach=False) operation by operation, in float32, so a run in cnnc follows PyTorch's
// trajectory from the same gradients to float32 rounding (bit for bit on an FMA machine, see below).
//
// Per parameter tensor p with gradient g, learning rate lr (from the schedule, per step), weight
// decay wd (0 for a parameter with decay = false), step t = 1, 2, ... (counted before the update):
//
//   SGD    d = g + wd*p                                  (only if wd != 0)
//          momentum mu != 0:  b = d on the first step,  b = mu*b + (1-dampening)*d after it
//                             d = nesterov ? d + mu*b : b
//          p = p - lr*d
//   Adam   d = g + wd*p                                  (only if wd != 0)
//          m = b1*m + (1-b1)*d;   v = b2*v + (1-b2)*d*d
//          amsgrad: vmax = max(vmax, v), and vmax replaces v below
//          bc1 = 1 - b1^t, bc2 = 1 - b2^t  (double);   stepSize = lr/bc1 (double)
//          denom = sqrt(v) / sqrt(bc2) + eps
//          p = p + (-stepSize * m) / denom
//   AdamW  p = p * (1 - lr*wd) first (decoupled decay), then Adam with d = g.
//   RMSprop d = g + wd*p                                 (only if wd != 0)
//          s = alpha*s + (1-alpha)*d*d
//          centered: a = alpha*a + (1-alpha)*d;  avg = sqrt(s - a*a) + eps,  else avg = sqrt(s) + eps
//          momentum mu > 0:  b = mu*b + d/avg;  p = p - lr*b        (b starts at 0)
//          else              p = p + (-lr*d)/avg
//
// Rounding follows ATen's kernels: scalars (lr, wd, 1-dampening, 1-b1, -stepSize, ...) are formed
// in double as Python does and rounded to float once; `x.add(y, alpha=a)` is fma(y, a, x) and
// `x.addcmul(y, z, value=a)` is fma(a*y, z, x), as ATen's AVX2/AVX-512 kernels compute them; every
// other operation is one float32 operation. State is float32 like torch's.
//
// Optimizer state for checkpoints (see state()):
//   optim.<key>.momentum_buffer                      SGD with momentum, after the first step
//   optim.<key>.exp_avg, optim.<key>.exp_avg_sq      Adam/AdamW, after the first step
//   optim.<key>.max_exp_avg_sq                       Adam/AdamW with amsgrad, after the first step
//   optim.<key>.square_avg (, momentum_buffer, grad_avg)  RMSprop (with momentum, centered), after the first step
//   optim.step                                       one value: the number of steps taken
// where <key> is the parameter's name, or its index in the list when the name is empty.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace cnnc::rt {

enum class OptimKind { SGD, Adam, AdamW, RMSprop };

// "sgd", "adam", "adamw", "rmsprop" <-> OptimKind; parseOptimKind fails with a message listing the choices.
bool parseOptimKind(const std::string& s, OptimKind& k, std::string& err);
const char* optimKindName(OptimKind k);

struct OptimConfig {
  OptimKind kind = OptimKind::SGD;
  double weightDecay = 0;  // torch: SGD 0, Adam 0, AdamW 1e-2 (see defaultOptimConfig)
  // SGD
  double momentum = 0, dampening = 0;
  bool nesterov = false;
  // Adam, AdamW (eps: RMSprop's too)
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  bool amsgrad = false;
  // RMSprop (momentum: SGD's field)
  double alpha = 0.99;
  bool centered = false;
};

// torch.optim's defaults for the kind (AdamW's weight decay is 1e-2; the others' 0).
OptimConfig defaultOptimConfig(OptimKind k);

// Rejects what torch.optim rejects (negative momentum, weight decay or eps, betas outside [0, 1),
// Nesterov without momentum or with dampening) and any non-finite setting.
bool validateOptimConfig(const OptimConfig& c, std::string& err);

// One parameter tensor. data and grad are the caller's and must stay alive and equally sized;
// the optimizer updates *data in place and reads *grad.
struct OptimParam {
  std::string name;                          // state key; empty = its index in the list
  std::vector<float>* data = nullptr;
  const std::vector<float>* grad = nullptr;
  bool decay = true;                         // false: weight decay 0 for this tensor (torch: a param group with weight_decay=0)
};

using OptimState = std::vector<std::pair<std::string, std::vector<float>>>;

class Optim {
public:
  // Checks the config and the parameters (non-null, equal sizes, distinct keys). Resets the state.
  bool init(const OptimConfig& c, std::vector<OptimParam> params, std::string& err);

  // One update of every parameter with learning rate lr (>= 0, finite). Nothing is changed when it
  // fails (a size changed since init, a bad lr).
  bool step(double lr, std::string& err);

  int64_t steps() const { return steps_; }
  const OptimConfig& config() const { return cfg_; }
  const std::vector<OptimParam>& params() const { return params_; }

  // Appends the state (names above, parameter order, optim.step last).
  void state(OptimState& out) const;
  void state(std::map<std::string, std::vector<float>>& out) const;

  // Restores state written by state(). Entries whose names do not start with "optim." are ignored,
  // so a checkpoint's whole extra map can be passed. optim.step is required; a missing buffer, a
  // buffer of the wrong size, or an optim.* entry this optimizer does not use (e.g. Adam's exp_avg
  // given to SGD) is an error that names it. Nothing is changed when it fails.
  bool loadState(const OptimState& in, std::string& err);
  bool loadState(const std::map<std::string, std::vector<float>>& in, std::string& err);

private:
  struct Slot {
    // SGD: momentum_buffer; Adam: exp_avg, exp_avg_sq, max_exp_avg_sq; RMSprop: square_avg, then
    // momentum_buffer (with momentum), then grad_avg (centered), in the order of bufferNames().
    std::vector<float> buf0, buf1, buf2;
  };
  std::string key(size_t i) const;
  std::vector<const char*> bufferNames() const;  // per slot, in buf0..buf2 order
  bool loadFrom(const std::vector<std::pair<const std::string*, const std::vector<float>*>>& in, std::string& err);

  OptimConfig cfg_;
  std::vector<OptimParam> params_;
  std::vector<Slot> slots_;
  int64_t steps_ = 0;
};

}  // namespace cnnc::rt
