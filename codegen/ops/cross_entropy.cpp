// cross_entropy.cpp: the training loss: cross-entropy with label smoothing eps over K classes,
// mean over the batch: loss_n = -sum_k t_k log softmax(z)_k with t = (1 - eps) onehot(label) + eps / K.
//
//   CELoss  logits[K], labels[1] (class index as float), eps[1] -> loss[1]
//   CEGrad  logits, labels, eps -> dlogits[K] = (softmax(z) - t) / N
#include "gpu.h"
#include "ops.h"

namespace cnnc::codegen {

namespace {

struct LossFuncs {
  Func out, mx{"ce_max"}, lse{"ce_lse"};
  std::vector<Argument> args;
};

LossFuncs crossEntropy(const KernelSpec& k) {
  LossFuncs f;
  Vars v;
  int64_t K = k.in[0];
  KernelParams p(k);
  ImageParam z = p.tensor("logits", k.in), lab = p.tensor("labels", {1}), eps = p.fixed("eps", {1});
  f.args = p.args();
  RDom r(0, (int)K, "r");
  f.out = Func(k.kind == KernelKind::CELoss ? "ce_loss" : "ce_grad");
  f.mx(v.n) = maximum(z(r, v.n));
  f.lse(v.n) = log(sum(exp(z(r, v.n) - f.mx(v.n)))) + f.mx(v.n);
  Expr label = cast<int>(lab(0, v.n));
  Expr e = eps(0);
  if (k.kind == KernelKind::CELoss) {
    Expr nll = f.lse(v.n) - z(clamp(label, 0, (int)K - 1), v.n);
    Expr smooth = f.lse(v.n) - sum(z(r, v.n)) / (float)K;
    f.out(v.f, v.n) = (1.0f - e) * nll + e * smooth;
  } else {
    Expr n = cast<float>(z.dim(1).extent());
    Expr target = select(v.f == label, 1.0f - e, 0.0f) + e / (float)K;
    f.out(v.f, v.n) = (exp(z(v.f, v.n) - f.lse(v.n)) - target) / n;
  }
  return f;
}

void crossEntropyCpu(LossFuncs& f, const KernelSpec& k) {
  Vars v;
  f.mx.compute_at(f.out, v.n);
  f.lse.compute_at(f.out, v.n);
  if (k.kind == KernelKind::CEGrad) f.out.parallel(v.n);
}

}  // namespace

ArgNames crossEntropyArgs(const KernelSpec&) { return {"logits", "labels", "eps"}; }

Lowered lowerCrossEntropy(const KernelSpec& k) { return lowerWithSchedules(k, crossEntropy(k), crossEntropyCpu); }

}  // namespace cnnc::codegen
