// train.cpp: see train.h.
#include "train.h"

#include <cmath>
#include <cstring>

namespace cnnc::rt {

bool Trainer::init(const Plan& p, const KernelEntry* table, int count, Weights& w, std::string& err) {
  if (p.mode != "train") { err = "this executable has no training plan"; return false; }
  plan_ = &p;
  w_ = &w;
  if (!ex_.init(p, table, count, err)) return false;
  grads_.assign(p.params.size(), {});
  for (size_t i = 0; i < p.params.size(); ++i)
    if (p.params[i].role == "weight" || p.params[i].role == "bias") grads_[i].assign(numel(p.params[i].shape), 0.0f);
  owned_.assign(p.consts.size(), {});
  seeds_.assign(p.consts.size(), {});
  std::vector<void*> ptrs(p.consts.size(), nullptr);
  std::vector<bool> isInt(p.consts.size(), false);
  for (size_t i = 0; i < p.consts.size(); ++i) {
    const ConstSpec& c = p.consts[i];
    if (c.kind == "param_ref") ptrs[i] = w.f32[c.param].data();
    else if (c.kind == "grad") ptrs[i] = grads_[c.param].data();
    else if (c.kind == "seed") {
      seeds_[i].assign(2, 0);
      ptrs[i] = seeds_[i].data();
      isInt[i] = true;
    } else {
      owned_[i].assign(numel(c.shape), 0.0f);
      ptrs[i] = owned_[i].data();
    }
  }
  ex_.bindConstants(ptrs, isInt);
  return true;
}

bool Trainer::step(const float* input, const int64_t* labels, int64_t n, uint64_t stepSeed, double& meanLoss, std::string& err) {
  const Plan& p = *plan_;
  int64_t K = numel(p.outputShape());
  for (int64_t i = 0; i < n; ++i)
    if (labels[i] < 0 || labels[i] >= K) {
      err = "label " + std::to_string(labels[i]) + " of image " + std::to_string(i) + " is out of range: the network has " + std::to_string(K) + " classes";
      return false;
    }
  if (!ex_.prepare(n, err)) return false;
  memcpy(ex_.tensorData(p.input, n), input, (size_t)(numel(p.inputShape()) * n) * sizeof(float));
  float* lab = ex_.tensorData(p.labels, n);
  for (int64_t i = 0; i < n; ++i) lab[i] = (float)labels[i];
  owned_[p.eps][0] = (float)labelSmoothing;
  for (size_t k = 0; k < p.seeds.size(); ++k) {
    // One independent stream per dropout layer and step.
    uint64_t s = stepSeed * 0x9E3779B97F4A7C15ull + (k + 1) * 0xBF58476D1CE4E5B9ull;
    seeds_[p.seeds[k]][0] = (int32_t)(s & 0x7fffffff);
    seeds_[p.seeds[k]][1] = (int32_t)((s >> 32) & 0x7fffffff);
  }
  if (!ex_.runCalls(n, err)) return false;
  const float* loss = ex_.tensorData(p.loss, n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += loss[i];
  meanLoss = sum / (double)n;
  // Batch norm: gamma/beta gradients come out of the kernels as [2,C]; running statistics follow
  // PyTorch: the unbiased batch variance, blended with `momentum`.
  for (const auto& b : p.bns) {
    const std::vector<float>& dp = owned_[b.dparams];
    const std::vector<float>& st = owned_[b.stats];
    size_t C = dp.size() / 2;
    std::copy(dp.begin(), dp.begin() + C, grads_[b.gamma].begin());
    std::copy(dp.begin() + C, dp.end(), grads_[b.beta].begin());
    double M = (double)b.elemsPerImage * (double)n;
    double unbias = M > 1 ? M / (M - 1) : 1.0;
    std::vector<float>& rm = w_->f32[b.mean];
    std::vector<float>& rv = w_->f32[b.var];
    for (size_t c = 0; c < C; ++c) {
      rm[c] = (float)((1 - b.momentum) * rm[c] + b.momentum * st[c]);
      rv[c] = (float)((1 - b.momentum) * rv[c] + b.momentum * st[C + c] * unbias);
    }
    w_->i64[b.tracked] += 1;
  }
  return true;
}

void sgdUpdate(const Plan& p, Weights& w, const std::vector<std::vector<float>>& grads, double lr) {
  for (size_t i = 0; i < p.params.size(); ++i) {
    if (grads[i].empty()) continue;
    std::vector<float>& v = w.f32[i];
    for (size_t k = 0; k < v.size(); ++k) v[k] -= (float)lr * grads[i][k];
  }
}

}  // namespace cnnc::rt
