// cross_entropy.cpp: the training loss: cross-entropy with label smoothing eps over K classes,
// mean over the batch: loss_n = -sum_k t_k log softmax(z)_k with t = (1 - eps) onehot(label) + eps / K.
// A segmentation net's output [K,H,W] has a label per pixel, and its loss is the mean over the
// batch's pixels (PyTorch's CrossEntropyLoss on [N,K,H,W] against [N,H,W]): each image's loss is
// the mean over its pixels, and the runtime averages the images (all have H x W pixels).
//
//   CELoss  logits[K], labels[1] (class index as float), eps[1] -> loss[1]
//           logits[K,H,W], labels[H,W], eps[1] -> loss[1] (mean over the pixels)
//   CEGrad  logits, labels, eps -> dlogits[K] = (softmax(z) - t) / N, or [K,H,W] / (N H W)
#include "gpu.h"
#include "ops.h"

namespace cnnc::codegen {

namespace {

struct LossFuncs {
  Func out, mx{"ce_max"}, lse{"ce_lse"}, pix;
  std::vector<Argument> args;
};

// Per pixel: the class dimension is first, as in the [K] case; (x, y) index the pixel.
LossFuncs crossEntropyPerPixel(const KernelSpec& k) {
  LossFuncs f;
  Vars v;
  int K = (int)k.in[0], H = (int)k.in[1], W = (int)k.in[2];
  KernelParams p(k);
  ImageParam z = p.tensor("logits", k.in), lab = p.tensor("labels", {H, W}), eps = p.fixed("eps", {1});
  f.args = p.args();
  RDom r(0, K, "r");
  Var x("x"), y("y");
  // z is stored [n][K][H][W]: Halide's dims are (x, y, class, n).
  f.mx(x, y, v.n) = maximum(z(x, y, r, v.n));
  f.lse(x, y, v.n) = log(sum(exp(z(x, y, r, v.n) - f.mx(x, y, v.n)))) + f.mx(x, y, v.n);
  Expr label = clamp(cast<int>(lab(x, y, v.n)), 0, K - 1);
  Expr e = eps(0);
  if (k.kind == KernelKind::CELoss) {
    Func pix("ce_pixel");
    Expr nll = f.lse(x, y, v.n) - z(x, y, label, v.n);
    Expr smooth = f.lse(x, y, v.n) - sum(z(x, y, r, v.n)) / (float)K;
    pix(x, y, v.n) = (1.0f - e) * nll + e * smooth;
    RDom q(0, W, 0, H, "q");
    f.out = Func("ce_loss");
    // Summed in double: a 256x256 map is 65,536 terms.
    f.out(v.f, v.n) = cast<float>(sum(cast<double>(pix(q.x, q.y, v.n))) / Expr((double)(H * W)));
    f.pix = pix;
  } else {
    Var c("c");
    Expr n = cast<float>(z.dim(3).extent()) * (float)(H * W);
    Expr target = select(c == label, 1.0f - e, 0.0f) + e / (float)K;
    f.out = Func("ce_grad");
    f.out(x, y, c, v.n) = (exp(z(x, y, c, v.n) - f.lse(x, y, v.n)) - target) / n;
  }
  return f;
}

void crossEntropyPerPixelCpu(LossFuncs& f, const KernelSpec& k) {
  Vars v;
  Var x = f.lse.args()[0], y = f.lse.args()[1], n = f.lse.args()[2];
  if (k.kind == KernelKind::CELoss) {
    f.pix.compute_at(f.out, v.n);
    f.lse.compute_at(f.out, v.n);
    f.mx.compute_at(f.out, v.n);
    f.out.parallel(v.n);
    return;
  }
  // The gradient: per image, the softmax statistics of a row of pixels, then the row's K planes.
  Var c = f.out.args()[2];
  f.out.reorder(x, c, y, n).parallel(n);
  f.lse.compute_at(f.out, y);
  f.mx.compute_at(f.out, y);
  if (k.in[2] >= 8) {
    f.out.vectorize(x, 8, TailStrategy::GuardWithIf);
    f.lse.vectorize(x, 8, TailStrategy::GuardWithIf);
    f.mx.vectorize(x, 8, TailStrategy::GuardWithIf);
  }
}

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

Lowered lowerCrossEntropy(const KernelSpec& k) {
  if (k.in.size() == 3) return lowerWithSchedules(k, crossEntropyPerPixel(k), crossEntropyPerPixelCpu);
  return lowerWithSchedules(k, crossEntropy(k), crossEntropyCpu);
}

}  // namespace cnnc::codegen
