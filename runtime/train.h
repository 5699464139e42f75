// train.h: one training step over a training plan: forward, loss, backward (the compiled
// kernels), then the batch-norm running statistics, as PyTorch updates them in train mode.
// Parameter updates are the optimizer's (optim.h); `sgdUpdate` is the plain rule `step` uses.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm.h"
#include "executor.h"
#include "plan.h"
#include "weights.h"

namespace cnnc::rt {

// Transfer learning: `--freeze PREFIX...`. A prefix names whole dotted components: "layer1" freezes
// "layer1.0.conv1.weight" but not "layer10.conv.weight"; an exact tensor name works too (a trailing
// '.' is ignored). frozen[i] is set for every trainable parameter (weight or bias) it matches. A
// prefix that matches no trainable parameter is an error that names it and lists the names that
// exist at that level; so is freezing every trainable parameter.
bool resolveFreeze(const Plan& p, const std::vector<std::string>& prefixes, std::vector<bool>& frozen, std::string& err);

// The calls a training step must run when the parameters marked in `frozen` get no gradient: every
// forward call (the loss and the BN batch statistics need them), then, walking the backward calls
// from the last to the first, each call whose output is the gradient of a trainable parameter (or
// the [2,C] gamma/beta gradient of a BN whose gamma or beta is trainable), or is a tensor or
// constant that an already needed call reads. Tensors are followed by arena storage (aliases such as
// flatten share one), constants by id; the set only grows, so a value written by several calls
// (none are today: every kernel writes its last argument once) keeps all its writers. Without
// frozen parameters every call is needed.
std::vector<bool> neededCalls(const Plan& p, const std::vector<bool>& frozen);

// "frozen: N tensors (M parameters); backward calls: K of T run".
std::string freezeSummary(const Plan& p, const std::vector<bool>& frozen);

class Trainer {
public:
  // Binds the plan's constants to `w` (updated in place) and to this trainer's gradients.
  // Parameters marked in `frozen` (see resolveFreeze) get no gradient: grad(i) stays empty, so the
  // optimizer and sgdUpdate leave them alone, and only neededCalls() run. Frozen batch-norm layers
  // still normalise with batch statistics and update their running statistics in training mode,
  // as PyTorch does for a module in train() whose parameters have requires_grad=False.
  bool init(const Plan& trainPlan, const KernelEntry* table, int count, Weights& w, std::string& err,
            const std::vector<bool>& frozen = {});
  // Runs one step on n images (NCHW) with integer class labels. Afterwards grads() holds
  // d(mean loss)/d(param) and the BN running statistics of `w` have been updated.
  bool step(const float* input, const int64_t* labels, int64_t n, uint64_t stepSeed, double& meanLoss, std::string& err);
  // Gradient of parameter i (empty for buffers such as running_mean and for frozen parameters).
  const std::vector<float>& grad(size_t i) const { return grads_[i]; }
  std::vector<std::vector<float>>& grads() { return grads_; }
  double labelSmoothing = 0.0;
  Executor& executor() { return ex_; }
  // Data-parallel training (train_parallel.cpp): each rank steps on its shard of the global batch,
  // and step() leaves in grads() the mean over the ranks, as one process at the global batch would
  // compute it. Gradients are summed in buckets of about `bucketBytes`, each started as soon as the
  // backward calls that write it have run. Batch norm: per-rank statistics (PyTorch DDP), with
  // running statistics taken from rank 0 after each step; with `syncBn`, statistics and the
  // backward's per-channel sums over the global batch (SyncBatchNorm). After init().
  bool enableDataParallel(Comm& comm, bool syncBn, size_t bucketBytes, std::string& err);

private:
  const Plan* plan_ = nullptr;
  Weights* w_ = nullptr;
  Executor ex_;
  std::vector<std::vector<float>> grads_;  // per param
  std::vector<std::vector<float>> owned_;  // per constant: stats, dparams, zeros, eps
  std::vector<std::vector<int32_t>> seeds_;
  // Data parallel (null: one process).
  struct Parallel;
  std::shared_ptr<Parallel> par_;
  Comm* comm_ = nullptr;
  bool syncBn_ = false;
  bool afterCall(size_t c, std::string& err);
  bool finishParallel(std::string& err);
  void copyBnGrads(const BNSpec& b);
};

// w -= lr * grad for every trainable parameter.
void sgdUpdate(const Plan& p, Weights& w, const std::vector<std::vector<float>>& grads, double lr);

}  // namespace cnnc::rt
