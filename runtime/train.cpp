// train.cpp: see train.h.
#include "train.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace cnnc::rt {

namespace {

bool isTrainable(const ParamSpec& ps) { return ps.trainable(); }

// `name` is `prefix` or lies under it: "layer1" covers "layer1.0.conv1.weight", not "layer10.x".
bool under(const std::string& name, const std::string& prefix) {
  if (prefix.empty()) return true;
  return name.size() >= prefix.size() && name.compare(0, prefix.size(), prefix) == 0 && (name.size() == prefix.size() || name[prefix.size()] == '.');
}

std::string joinList(const std::vector<std::string>& names, size_t most = 12) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < most; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > most) s += ", ... (" + std::to_string(names.size() - most) + " more)";
  return s;
}

}  // namespace

bool resolveFreeze(const Plan& p, const std::vector<std::string>& prefixes, std::vector<bool>& frozen, std::string& err) {
  frozen.assign(p.params.size(), false);
  for (const std::string& given : prefixes) {
    std::string pre = given;
    while (!pre.empty() && pre.back() == '.') pre.pop_back();
    if (pre.empty()) { err = "--freeze needs layer names (e.g. conv1 or layer1.0), not '" + given + "'"; return false; }
    bool any = false;
    for (size_t i = 0; i < p.params.size(); ++i)
      if (isTrainable(p.params[i]) && under(p.params[i].name, pre)) frozen[i] = any = true;
    if (any) continue;
    // List what exists at the deepest level of the prefix that does exist: "layer1.9" shows
    // layer1.0, layer1.1; "nosuchlayer" shows the top-level layers.
    std::string parent = pre;
    std::vector<std::string> choices;
    do {
      size_t dot = parent.rfind('.');
      parent = dot == std::string::npos ? "" : parent.substr(0, dot);
      for (const auto& ps : p.params) {
        if (!isTrainable(ps) || !under(ps.name, parent)) continue;
        size_t from = parent.empty() ? 0 : parent.size() + 1;
        size_t end = ps.name.find('.', from);
        std::string c = ps.name.substr(0, end);
        if (c != parent && std::find(choices.begin(), choices.end(), c) == choices.end()) choices.push_back(c);
      }
    } while (choices.empty() && !parent.empty());
    err = "--freeze '" + given + "' matches no parameter of network " + p.net + "; " +
          (parent.empty() ? "its layers are: " : "'" + parent + "' has: ") + joinList(choices);
    return false;
  }
  bool anyLeft = false;
  for (size_t i = 0; i < p.params.size(); ++i) anyLeft |= isTrainable(p.params[i]) && !frozen[i];
  if (!anyLeft) { err = "--freeze leaves nothing to train: every weight and bias of network " + p.net + " is frozen"; return false; }
  return true;
}

std::vector<bool> neededCalls(const Plan& p, const std::vector<bool>& frozen) {
  std::vector<bool> need(p.calls.size(), true);
  if (!p.isTraining() || std::find(frozen.begin(), frozen.end(), true) == frozen.end()) return need;
  std::vector<bool> constNeeded(p.consts.size(), false), storageNeeded(p.storages.size(), false);
  for (size_t i = 0; i < p.params.size() && i < p.paramGrad.size(); ++i)
    if (!frozen[i] && p.paramGrad[i] >= 0) constNeeded[p.paramGrad[i]] = true;
  for (const auto& b : p.bns)
    if (b.gamma >= 0 && (!frozen[b.gamma] || !frozen[b.beta])) constNeeded[b.dparams] = true;  // -1: affine=false
  auto needed = [&](const CallArg& a) -> std::vector<bool>::reference {
    return a.isConst ? constNeeded[a.id] : storageNeeded[p.acts[a.id].storage];
  };
  for (int c = (int)p.calls.size() - 1; c >= p.forwardCalls; --c) {
    const CallSpec& call = p.calls[c];
    need[c] = needed(call.args.back());
    if (need[c])
      for (const CallArg& a : call.args) needed(a) = true;
  }
  return need;
}

std::string freezeSummary(const Plan& p, const std::vector<bool>& frozen) {
  int tensors = 0;
  int64_t params = 0;
  for (size_t i = 0; i < p.params.size() && i < frozen.size(); ++i)
    if (frozen[i]) { ++tensors; params += numel(p.params[i].shape); }
  std::vector<bool> need = neededCalls(p, frozen);
  int run = 0, total = (int)p.calls.size() - p.forwardCalls;
  for (size_t c = p.forwardCalls; c < need.size(); ++c) run += need[c];
  return "frozen: " + std::to_string(tensors) + (tensors == 1 ? " tensor (" : " tensors (") + std::to_string(params) + " parameters); backward calls: " + std::to_string(run) +
         " of " + std::to_string(total) + " run";
}

bool Trainer::init(const Plan& p, const KernelEntry* table, int count, Weights& w, std::string& err, const std::vector<bool>& frozen) {
  if (!p.isTraining()) { err = "this executable has no training plan"; return false; }
  if (!frozen.empty() && frozen.size() != p.params.size()) { err = "internal error: frozen mask of the wrong size"; return false; }
  plan_ = &p;
  w_ = &w;
  if (!ex_.init(p, table, count, err)) return false;
  ex_.active.clear();
  if (!frozen.empty()) ex_.active = neededCalls(p, frozen);
  grads_.assign(p.params.size(), {});
  for (size_t i = 0; i < p.params.size(); ++i)
    if (isTrainable(p.params[i]) && (frozen.empty() || !frozen[i])) grads_[i].assign(numel(p.params[i].shape), 0.0f);
  owned_.assign(p.consts.size(), {});
  seeds_.assign(p.consts.size(), {});
  std::vector<void*> ptrs(p.consts.size(), nullptr);
  std::vector<bool> isInt(p.consts.size(), false);
  for (size_t i = 0; i < p.consts.size(); ++i) {
    const ConstSpec& c = p.consts[i];
    if (c.kind == plan_schema::ConstKind::ParamRef) ptrs[i] = w.f32[c.param].data();
    else if (c.kind == plan_schema::ConstKind::Grad && !grads_[c.param].empty()) ptrs[i] = grads_[c.param].data();
    else if (c.kind == plan_schema::ConstKind::Seed) {
      seeds_[i].assign(2, 0);
      ptrs[i] = seeds_[i].data();
      isInt[i] = true;
    } else {
      owned_[i].assign(numel(c.shape), c.kind == plan_schema::ConstKind::Ones ? 1.0f : 0.0f);
      ptrs[i] = owned_[i].data();
    }
  }
  ex_.bindConstants(ptrs, isInt);
  return true;
}

bool Trainer::step(const float* input, const int64_t* labels, int64_t n, uint64_t stepSeed, double& meanLoss, std::string& err) {
  const Plan& p = *plan_;
  // Classifiers: K = all the scores, one label per image; segmentation ([K,H,W]): a label per pixel.
  int64_t perImage = numel(p.acts[p.labels].shape);
  int64_t K = perImage == 1 ? numel(p.outputShape()) : p.outputShape()[0];
  for (int64_t i = 0; i < n * perImage; ++i)
    if (labels[i] < 0 || labels[i] >= K) {
      err = "label " + std::to_string(labels[i]) + " of image " + std::to_string(i / perImage) +
            (perImage == 1 ? "" : " (pixel " + std::to_string(i % perImage) + ")") + " is out of range: the network has " + std::to_string(K) + " classes";
      return false;
    }
  if (!ex_.prepare(n, err)) return false;
  memcpy(ex_.tensorData(p.input, n), input, (size_t)(numel(p.inputShape()) * n) * sizeof(float));
  float* lab = ex_.tensorData(p.labels, n);
  for (int64_t i = 0; i < n * perImage; ++i) lab[i] = (float)labels[i];
  owned_[p.eps][0] = (float)labelSmoothing;
  // Data parallel: each rank draws its own dropout masks (a mask is a hash of the element's index
  // within the rank's slice, so equal seeds would repeat one mask on every slice).
  if (par_) stepSeed += (uint64_t)comm_->rank() * 0xD6E8FEB86659FD93ull;
  for (size_t k = 0; k < p.seeds.size(); ++k) {
    // One independent stream per dropout layer and step.
    uint64_t s = stepSeed * 0x9E3779B97F4A7C15ull + (k + 1) * 0xBF58476D1CE4E5B9ull;
    seeds_[p.seeds[k]][0] = (int32_t)(s & 0x7fffffff);
    seeds_[p.seeds[k]][1] = (int32_t)((s >> 32) & 0x7fffffff);
  }
  if (!ex_.toDevice(p.input, n, err) || !ex_.toDevice(p.labels, n, err) || !ex_.runCalls(n, err) || !ex_.toHost(p.loss, n, err)) return false;
  const float* loss = ex_.tensorData(p.loss, n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += loss[i];
  meanLoss = sum / (double)n;
  // Batch norm: gamma/beta gradients come out of the kernels as [2,C]; running statistics follow
  // PyTorch: the unbiased batch variance, blended with `momentum`.
  for (const auto& b : p.bns) {
    const std::vector<float>& st = owned_[b.stats];
    size_t C = st.size() / 2;
    if (!par_) copyBnGrads(b);  // data parallel: copied as soon as the kernel wrote them
    // SyncBatchNorm's statistics are over the global batch.
    double M = (double)b.elemsPerImage * (double)n * (par_ && syncBn_ ? comm_->size() : 1);
    double unbias = M > 1 ? M / (M - 1) : 1.0;
    std::vector<float>& rm = w_->f32[b.mean];
    std::vector<float>& rv = w_->f32[b.var];
    for (size_t c = 0; c < C; ++c) {
      rm[c] = (float)((1 - b.momentum) * rm[c] + b.momentum * st[c]);
      rv[c] = (float)((1 - b.momentum) * rv[c] + b.momentum * st[C + c] * unbias);
    }
    w_->i64[b.tracked] += 1;
  }
  return !par_ || finishParallel(err);
}

void Trainer::copyBnGrads(const BNSpec& b) {
  const std::vector<float>& dp = owned_[b.dparams];
  size_t C = dp.size() / 2;
  // empty: frozen; -1: affine=false (no gamma or beta to train)
  if (b.gamma >= 0 && !grads_[b.gamma].empty()) std::copy(dp.begin(), dp.begin() + C, grads_[b.gamma].begin());
  if (b.beta >= 0 && !grads_[b.beta].empty()) std::copy(dp.begin() + C, dp.end(), grads_[b.beta].begin());
}

void sgdUpdate(const Plan& p, Weights& w, const std::vector<std::vector<float>>& grads, double lr) {
  for (size_t i = 0; i < p.params.size(); ++i) {
    if (grads[i].empty()) continue;
    std::vector<float>& v = w.f32[i];
    for (size_t k = 0; k < v.size(); ++k) v[k] -= (float)lr * grads[i][k];
  }
}

}  // namespace cnnc::rt
