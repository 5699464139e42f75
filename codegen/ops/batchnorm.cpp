// batchnorm.cpp: the batchnorm op (nn.BatchNorm2d, nn.BatchNorm1d on a flat input).
//
//   Affine        x, scale[C], shift[C] -> y = act(x * scale + shift)   (inference: running
//                 statistics folded into a scale and shift; most BNs fold into the conv before them)
//   BNStats       x[C,H,W] -> stats[2,C]: batch mean and biased variance (not batched)
//   BNApply       x, stats, gamma, beta -> y = act((x - mean) / sqrt(var + eps) * gamma + beta)
//   BNBackParams  dy (, y), x, stats (, gamma, beta) -> [2,C]: dgamma, dbeta (not batched)
//   BNBackData    dy (, y), x, stats, gamma, dparams (, beta) -> dx
//
// BN kinds with extraIns = {pooled}: a k x k max pool (attrs.kernel) that tiles the BN's ReLU
// output is folded in (batchnormForward, below): BNApply writes the pooled output, and dy of the backward
// kinds is the pooled gradient.
#include "activation.h"
#include "gpu.h"
#include "ops.h"
#include "plan_builder.h"

namespace cnnc::codegen {

namespace {

// The BN backward kernels with a fused piecewise-linear activation (ReLU, ReLU6, hardtanh, leaky
// ReLU, hardsigmoid) recompute y from x with the forward's own expression, so they read gamma and
// beta, not y: one tensor less to read in each of the two kernels (MobileNetV2's step at batch 32
// on 96x96: its 35 BN + ReLU6 pairs' backward kernels read 3 and 4 tensors, now 2 and 3). Other
// activations' derivatives need y (recomputing an exp or erf would cost more than the read), an
// extra argument after dy.
bool bnMaskFromX(const Act& a) {
  return a.is("relu") || a.is("relu6") || a.is("hardtanh") || a.is("hardsigmoid") || (a.is("leakyrelu") && gradReadsOutput(a));
}

// BN over [C,H,W] or [F]: M = batch x H x W elements per channel.
Expr elemsPerChannel(const ImageParam& x, const Dims& d) {
  Expr n = x.dim((int)d.size()).extent();
  return cast<float>(d.size() == 3 ? n * (int)(d[1] * d[2]) : n);
}

// ---- Affine (inference) ----

struct AffineFuncs {
  Func out{"affine_out"};
  std::vector<Argument> args;
};

AffineFuncs affineForward(const KernelSpec& k) {
  AffineFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam in = p.tensor("input", k.in), sc = p.fixed("scale", {k.in[0]}), sh = p.fixed("shift", {k.in[0]});
  f.args = p.args();
  if (k.in.size() == 3) f.out(v.x, v.y, v.c, v.n) = applyAct(in(v.x, v.y, v.c, v.n) * sc(v.c) + sh(v.c), k.act);
  else f.out(v.f, v.n) = applyAct(in(v.f, v.n) * sc(v.f) + sh(v.f), k.act);
  return f;
}

void affineCpu(AffineFuncs& f, const KernelSpec& k) {
  Vars v;
  if (k.in.size() == 3) scheduleSpatial(f.out, k, v);
  else scheduleFlat(f.out, k, v);
}

// ---- Per-channel reductions' tasks ----

// Tasks of T channels (T = 8, or the largest of 4 and 2 dividing C, so no task has a tail): with one
// channel per task, ResNet-18's 7x7 and 14x14 statistics and dgamma/dbeta (256-512 channels of
// 392-1568 values at batch 8) paid the thread pool's per-task cost about as often as they summed a
// plane: those two kinds took 15.6-16.4 ms of its step, 10.8-14.0 ms in tasks of 8 (AMD EPYC 26/2,
// profiled, three alternating runs). Each channel's sums are unchanged. Returns the channel loop;
// `task` (if given) is set to the task loop and `T` to its channels.
Var channelTasks(Func out, Var which, const KernelSpec& k, Var* task = nullptr, int* T = nullptr) {
  Vars v;
  Var co("co"), ci("ci");
  out.reorder(which, v.c).bound(which, 0, 2).unroll(which);
  int C = (int)k.in[0];
  for (int t : {8, 4, 2})
    if (C % t == 0 && C >= 2 * t) {
      out.split(v.c, co, ci, t).parallel(co);
      if (task) *task = co;
      if (T) *T = t;
      return ci;
    }
  out.parallel(v.c);
  if (task) *task = v.c;
  if (T) *T = 1;
  return v.c;
}

// ---- BNStats ----

struct StatsFuncs {
  Func out{"bn_stats"}, mean{"bn_mean"}, var{"bn_var"};
  Func s1{"bn_sum64"}, s2{"bn_sqsum64"};  // statsInLanes: mean's and var's sums in float64, over r
  Func lsum, lsq;  // statsInLanes, large batches: the same sums in float32, in vector lanes
  RDom r;          // statsInLanes: every value of a channel
  Expr large;
  Var which{"which"};
  std::vector<Argument> args;
};

// Large batches (8192 or more values per channel) sum in vector lanes (laneSum): the scalar sums
// wait on each add, and took 6.7 ms of MiniVGG's step at batch 128 for 0.23 GB read (its 8x8
// layers, 8192 values, 0.60 -> 0.30 ms each; 2-core Xeon, Sapphire Rapids class, bench/run.py).
// Small ones sum in float64, a task's channels side by side (bnStatsCpu). Any change to these sums'
// rounding used to fail step-parity tests (lanes from 256 values and float32 sums side by side in
// stops 43 and 46: ResNet-50/101, GoogLeNet, MobileNetV2, DenseNet-121 at batch 2), because their
// draws hold ReLU inputs within float32 rounding of zero that the new rounding put on the other side
// of float64's; the step tests' reference now takes cnnc's own decision for such elements
// (tests/torch/step_parity.py, EdgeDecisions). On a GPU the two-pass sums are reduced across thread
// blocks (gpu.cpp): lane sums would only add work.
bool statsInLanes(const KernelSpec& k) { return k.in.size() == 3 && !k.schedule.gpu; }

StatsFuncs bnStatsForward(const KernelSpec& k) {
  StatsFuncs f;
  Vars v;
  const Dims& d = k.in;
  KernelParams p(k);
  ImageParam x = p.tensor("x", d);
  f.args = p.args();
  Expr M = elemsPerChannel(x, d);
  Var which = f.which;
  if (statsInLanes(k)) {
    f.r = RDom(0, (int)d[2], 0, (int)d[1], 0, x.dim(3).extent(), "r");
    RDom& r = f.r;
    Expr M64 = cast<double>(M);
    f.s1(v.c) = cast<double>(0.0f);
    f.s1(v.c) += cast<double>(x(r.x, r.y, v.c, r.z));
    Expr dv = cast<double>(x(r.x, r.y, v.c, r.z)) - f.s1(v.c) / M64;
    f.s2(v.c) = cast<double>(0.0f);
    f.s2(v.c) += dv * dv;
    f.mean(v.c) = cast<float>(f.s1(v.c) / M64);
    f.var(v.c) = cast<float>(f.s2(v.c) / M64);
  } else if (d.size() == 3) {
    RDom r(0, (int)d[2], 0, (int)d[1], 0, x.dim(3).extent(), "r");
    f.mean(v.c) = sum(x(r.x, r.y, v.c, r.z)) / M;
    Expr dv = x(r.x, r.y, v.c, r.z) - f.mean(v.c);
    f.var(v.c) = sum(dv * dv) / M;
  } else {
    RDom r(0, x.dim(1).extent(), "r");
    f.mean(v.c) = sum(x(v.c, r)) / M;
    Expr dv = x(v.c, r) - f.mean(v.c);
    f.var(v.c) = sum(dv * dv) / M;
  }
  if (statsInLanes(k)) {
    RDom& r = f.r;
    f.lsum = Func("bn_sum_lanes");
    f.lsq = Func("bn_sq_lanes");
    f.lsum(v.c) = 0.0f;
    f.lsum(v.c) += x(r.x, r.y, v.c, r.z);
    Expr dl = x(r.x, r.y, v.c, r.z) - f.lsum(v.c) / M;
    f.lsq(v.c) = 0.0f;
    f.lsq(v.c) += dl * dl;
    f.large = x.dim(3).extent() * (int)(d[1] * d[2]) >= 8192;
    f.out(v.c, which) = select(f.large, select(which == 0, f.lsum(v.c), f.lsq(v.c)) / M, select(which == 0, f.mean(v.c), f.var(v.c)));
    return f;
  }
  f.out(v.c, which) = select(which == 0, f.mean(v.c), f.var(v.c));
  return f;
}

// Small batches' sums (below `large`) run in float64, the channels of a task side by side in vector
// lanes: lane c adds channel c's values in order. One channel at a time, each add waited on the one
// before: ResNet-18's 28x28 to 7x7 statistics at batch 8 ran at 9-12% of the memory rate, 6.8 ms of
// its step; side by side 3.5 ms (AMD EPYC 26/2, profiled, stop 46). In float64 the means are 4-60x
// closer to the float64 reference than the float32 sums were, and rounded once to float32.
void bnStatsCpu(StatsFuncs& f, const KernelSpec& k) {
  Var task;
  int T = 1;
  Var c = channelTasks(f.out, f.which, k, &task, &T);
  if (!statsInLanes(k)) {
    f.mean.compute_at(f.out, c);
    f.var.compute_at(f.out, c);
    return;
  }
  Vars v;
  for (Func g : {f.s1, f.s2}) {
    g.compute_at(f.out, task);
    g.update().reorder(v.c, f.r.x, f.r.y, f.r.z);
    if (T > 1) g.vectorize(v.c, T), g.update().vectorize(v.c, T);
  }
  f.mean.compute_at(f.out, task);
  f.var.compute_at(f.out, task);
  if (T > 1) f.mean.vectorize(v.c, T), f.var.vectorize(v.c, T);
  f.lsum.compute_at(f.out, c);
  f.lsq.compute_at(f.out, c);
  laneSum(f.lsum, f.r, (int)k.in[2], (int)k.in[1]);
  laneSum(f.lsq, f.r, (int)k.in[2], (int)k.in[1]);
  f.out.specialize(f.large);
}

// ---- BNApply ----

// Per-channel terms of batch norm, computed once per call on CPUs (bnTermsCpu): a square root and a
// division per element held the BN kernels below the memory rate. Each is the exact float the
// per-element expression gave before (IEEE sqrt and division), so results are unchanged bit for
// bit: the step-parity tests of ResNet-50/101 and plain34 move past their bounds with any other
// rounding.
Func bnStd(const ImageParam& st, const KernelSpec& k) {  // sqrt(var + eps)
  Func f("bn_std");
  Var c("c");
  f(c) = sqrt(st(c, 1) + (float)k.attrs.eps);
  return f;
}

Func bnInvStd(const ImageParam& st, const KernelSpec& k) {  // 1 / sqrt(var + eps)
  Func f("bn_invstd");
  Var c("c");
  f(c) = 1.0f / sqrt(st(c, 1) + (float)k.attrs.eps);
  return f;
}

// The normalised, scaled and shifted x: bnApply's output before its activation. The backward
// kernels recompute the activation's decision with this same expression, so it must round the same
// in every kernel: strict_float, because Halide lets LLVM reassociate and contract float math, and
// it did so differently per kernel. BNApply computed (x - mean) * gamma / sd + beta (LLVM's
// reassociation of the expression as written, (x - mean) / sd * gamma + beta), and BNBackParams
// with ReLU6 fma((x - mean) / sd, gamma, beta): 81 of 4096 pre-activations within ulps of 0 or 6
// were clamped by the forward and passed by the backward (relu_decision.py relu6). The order
// written here is the one BNApply had: training results are unchanged (step.resnet152's layer3
// BN gradients, 4x4 planes at batch 1, moved past their bound with the other order).
Expr bnNorm(Expr xv, Expr c, const ImageParam& st, Func sd, const ImageParam& g, const ImageParam& b) {
  return strict_float((xv - st(c, 0)) * g(c) / sd(c) + b(c));
}

// sign(gamma): bnNorm is increasing in x for gamma > 0 and decreasing for gamma < 0, so a window's
// largest y is at its largest x * sign(gamma) (the keys of the folded max pool's routing).
Expr gammaSign(const ImageParam& g, Expr c) { return select(g(c) > 0.0f, 1.0f, g(c) < 0.0f, -1.0f, 0.0f); }

struct ApplyFuncs {
  Func out{"bn_apply"}, sd;
  std::vector<Argument> args;
};

ApplyFuncs bnApplyForward(const KernelSpec& k) {
  ApplyFuncs f;
  Vars v;
  const Dims& d = k.in;
  int64_t C = d[0];
  KernelParams p(k);
  ImageParam x = p.tensor("x", d), st = p.fixed("stats", {2, C}), g = p.fixed("gamma", {C}), b = p.fixed("beta", {C});
  f.sd = bnStd(st, k);
  Func sd = f.sd;
  if (!k.extraIns.empty()) {
    // A folded kw x kh max pool (batchnormForward): the maximum of each window of act(BN(x)),
    // computed from x with the same expression, so the full-size output is never stored.
    int kw = (int)k.attrs.kernel[1], kh = (int)k.attrs.kernel[0];
    Expr m;
    for (int j = 0; j < kw * kh; ++j) {
      Expr e = applyAct(bnNorm(x(v.x * kw + j % kw, v.y * kh + j / kw, v.c, v.n), v.c, st, sd, g, b), k.act);
      m = j == 0 ? e : max(m, e);
    }
    f.out(v.x, v.y, v.c, v.n) = m;
  } else if (d.size() == 3) {
    Expr y = bnNorm(x(v.x, v.y, v.c, v.n), v.c, st, sd, g, b);
    if (k.residual) y = y + p.tensor("residual", k.out)(v.x, v.y, v.c, v.n);  // the add that planned this call
    f.out(v.x, v.y, v.c, v.n) = applyAct(y, k.act);
  } else {
    f.out(v.f, v.n) = applyAct(bnNorm(x(v.f, v.n), v.f, st, sd, g, b), k.act);
  }
  f.args = p.args();
  return f;
}

void bnApplyCpu(ApplyFuncs& f, const KernelSpec& k) {
  Vars v;
  f.sd.compute_root();
  if (!k.extraIns.empty() || k.in.size() == 3) scheduleSpatial(f.out, k, v);
  else scheduleFlat(f.out, k, v);
}

// ---- The backward kernels ----

// BN backward kernels with a fused activation (k.act set) apply the activation's gradient inline:
// the separate ActGrad kernel read and wrote a whole tensor for what is one multiply per element.
// Piecewise-linear activations recompute y from x (bnMaskFromX); others read their output y (appended
// to the arguments after dy). Behind a folded max pool (poolFolded) dy is the pool's gradient.
bool poolFolded(const KernelSpec& k) { return k.act.is("relu") && !k.extraIns.empty(); }

// dy through the activation, and the per-channel Funcs it computes once per call on CPUs.
struct DyAct {
  Func dy;
  std::vector<Func> perChannel;  // compute_root on CPUs
};

// dy through the activation. ReLU's mask reads x, st, sd (bnStd), g and b; other activations y.
DyAct actBackInline(ImageParam dy, const KernelSpec& k, KernelParams& p, const ImageParam& x, const ImageParam& st, Func sd,
                    const ImageParam& g, const ImageParam& b) {
  if (k.act.none()) return {Func(dy), {}};
  std::vector<Var> idx;
  for (int i = 0; i < dy.dimensions(); ++i) idx.push_back(Var("i" + std::to_string(i)));
  std::vector<Expr> ix(idx.begin(), idx.end());
  Func f("bn_dy_act");
  if (poolFolded(k)) {
    // dy is the gradient of a kw x kh max pool that tiles y = relu(bnNorm(x)): each window's
    // gradient goes to its first maximum, as pool.cpp's tiled MaxPoolBack routes it. This replaces
    // the MaxPoolBack kernel and the full-size gradient it wrote (MiniVGG: 2.3 ms per step).
    // The window's maximum is that of x * sign(gamma) (gammaSign; all tied, so the first, for
    // gamma = 0, as y is then constant). Only windows whose maximum is positive pass the ReLU mask
    // below; there the two orders agree except where rounding made two different x equal in y, a
    // tie within one ulp at which either element is a valid subgradient. Recomputing y for each
    // window element instead cost four divisions per element and was slower than the MaxPoolBack
    // it replaces. Element j of a window (scan order, x fastest) is its first maximum when its key
    // exceeds every earlier one and is no less than every later one; written out per j, not as an
    // argmax Func, so the test stays elementwise and vectorises.
    int kw = (int)k.attrs.kernel[1], kh = (int)k.attrs.kernel[0], K = kw * kh;
    Expr X = ix[0], Y = ix[1], C = ix[2], N = ix[3];
    Expr x0 = (X / kw) * kw, y0 = (Y / kh) * kh;
    Expr sgn = gammaSign(g, C);
    std::vector<Expr> e;
    for (int j = 0; j < K; ++j) e.push_back(x(x0 + j % kw, y0 + j / kw, C, N) * sgn);
    Expr me = X % kw + (Y % kh) * kw, first = Internal::const_false();
    for (int j = 0; j < K; ++j) {
      Expr isFirst = Internal::const_true();
      for (int i = 0; i < K; ++i)
        if (i != j) isFirst = isFirst && (i < j ? e[j] > e[i] : e[j] >= e[i]);
      first = first || (me == j && isFirst);
    }
    f(idx) = select(bnNorm(x(ix), C, st, sd, g, b) > 0.0f && first, dy(X / kw, Y / kh, C, N), 0.0f);
    return {f, {}};
  }
  if (bnMaskFromX(k.act)) {
    // y > 0 with bnNorm, the very expression BNApply's output took: the mask is the forward's own
    // decision. A multiply-add form, x * (gamma / sd) + (beta - mean * gamma / sd), saved a division
    // per element but rounds differently: on pre-activations within a few ulps of 0 it passed
    // gradients through elements the forward had set to 0 (tests/torch/relu_decision.py: 187 of
    // 4096 such channels), and every gradient upstream was off by that element's dy.
    Expr pre = bnNorm(x(ix), ix[2], st, sd, g, b);
    // The others: y = act(pre) is BNApply's output bit for bit (bnNorm is strict_float), and the
    // derivative reads it as the unfused ActGrad would.
    f(idx) = k.act.is("relu") ? select(pre > 0.0f, dy(ix), 0.0f) : dy(ix) * actDeriv(applyAct(pre, k.act), k.act);
    return {f, {}};
  }
  ImageParam y = p.tensor("y", k.in);
  f(idx) = dy(ix) * actDeriv(y(ix), k.act);  // the training plan fuses only activations whose gradReadsOutput
  return {f, {}};
}

// dgamma and dbeta in one pass (a tuple reduction): two separate sums read dy and y twice.
struct BackParamsFuncs {
  Func out{"bn_dparams"}, acc{"bn_dgamma_dbeta"}, dg{"bn_dgamma"}, db{"bn_dbeta"};
  std::vector<Func> perChannel;  // compute_root on CPUs
  RDom r;
  int laneWidth = 0;             // the x extent the lane sums split (0: flat input, no lane sums)
  int laneHeight = 1;            // and the y extent (laneSum)
  Var which{"which"};
  std::vector<Argument> args;
};

BackParamsFuncs bnBackParamsAlgorithm(const KernelSpec& k) {
  BackParamsFuncs f;
  Vars v;
  const Dims& d = k.in;
  int64_t C = d[0];
  KernelParams p(k);
  ImageParam dyIn = p.tensor("dy", k.extraIns.empty() ? d : k.extraIns[0]), x = p.tensor("x", d), st = p.fixed("stats", {2, C});
  ImageParam g = p.fixed("gamma", {C}), b = p.fixed("beta", {C});
  Func sd = bnStd(st, k);
  f.perChannel = {sd};
  Func dy;
  if (!poolFolded(k)) {
    DyAct da = actBackInline(dyIn, k, p, x, st, sd, g, b);
    dy = da.dy;
    f.perChannel.insert(f.perChannel.end(), da.perChannel.begin(), da.perChannel.end());
  }
  f.args = p.args();
  Var which = f.which;
  if (poolFolded(k)) {
    // Behind a folded max pool only each window's first maximum x* receives the pooled gradient,
    // so the sums run over windows: dgamma = sum of dy_pool * mask * xhat(x*), dbeta = sum of
    // dy_pool * mask, with mask = bnNorm(x*) > 0. These are the terms of the per-element sums
    // without the zeros, and one division per window, not two per element: the per-element form
    // was bound by its divisions (MiniVGG: 1.9 ms at 11 GB/s where x and dy need 0.8 ms).
    // x* = m * sign(gamma), m the window's maximum of x * sign(gamma) (exact: the sign is +-1);
    // for gamma = 0 all keys tie and the first element is x*.
    int kw = (int)k.attrs.kernel[1], kh = (int)k.attrs.kernel[0];
    const Dims& pd = k.extraIns[0];  // [C, H / kh, W / kw]
    f.r = RDom(0, (int)pd[2], 0, (int)pd[1], 0, x.dim(3).extent(), "r");
    RDom& r = f.r;
    Expr sgn = gammaSign(g, v.c);
    Expr m;
    for (int j = 0; j < kw * kh; ++j) {
      Expr e = x(r.x * kw + j % kw, r.y * kh + j / kw, v.c, r.z) * sgn;
      m = j == 0 ? e : max(m, e);
    }
    Expr xs = select(sgn == 0.0f, x(r.x * kw, r.y * kh, v.c, r.z), m * sgn);
    Expr dyv = select(bnNorm(xs, v.c, st, sd, g, b) > 0.0f, dyIn(r.x, r.y, v.c, r.z), 0.0f);
    Func invstd = bnInvStd(st, k);
    f.perChannel.push_back(invstd);
    Expr xhat = (xs - st(v.c, 0)) * invstd(v.c);
    f.acc(v.c) = Tuple(0.0f, 0.0f);
    f.acc(v.c) = Tuple(f.acc(v.c)[0] + dyv * xhat, f.acc(v.c)[1] + dyv);
    f.laneWidth = (int)pd[2];
    f.laneHeight = (int)pd[1];
    f.out(v.c, which) = select(which == 0, f.acc(v.c)[0], f.acc(v.c)[1]);
  } else if (d.size() == 3) {
    f.r = RDom(0, (int)d[2], 0, (int)d[1], 0, x.dim(3).extent(), "r");
    RDom& r = f.r;
    // xhat by a multiply with 1 / sd, as BNBackData has it: with ReLU6's mask recomputed from x
    // (bnNorm's division), a second division per element made this kernel division-bound.
    Func invstd = bnInvStd(st, k);
    f.perChannel.push_back(invstd);
    Expr xhat = (x(r.x, r.y, v.c, r.z) - st(v.c, 0)) * invstd(v.c);
    f.acc(v.c) = Tuple(0.0f, 0.0f);
    Expr dyv = dy(r.x, r.y, v.c, r.z);
    f.acc(v.c) = Tuple(f.acc(v.c)[0] + dyv * xhat, f.acc(v.c)[1] + dyv);
    f.laneWidth = (int)d[2];
    f.laneHeight = (int)d[1];
    f.out(v.c, which) = select(which == 0, f.acc(v.c)[0], f.acc(v.c)[1]);
  } else {
    RDom r(0, x.dim(1).extent(), "r");
    Expr xhat = (x(v.c, r) - st(v.c, 0)) / sd(v.c);
    f.dg(v.c) = sum(dy(v.c, r) * xhat);
    f.db(v.c) = sum(dy(v.c, r));
    f.out(v.c, which) = select(which == 0, f.dg(v.c), f.db(v.c));
  }
  return f;
}

void bnBackParamsCpu(BackParamsFuncs& f, const KernelSpec& k) {
  for (Func p : f.perChannel) p.compute_root();
  Var c = channelTasks(f.out, f.which, k);
  if (f.laneWidth) {
    laneSum(f.acc, f.r, f.laneWidth, f.laneHeight, poolFolded(k));
    f.acc.compute_at(f.out, c);
  } else {
    f.dg.compute_at(f.out, c);
    f.db.compute_at(f.out, c);
  }
}

// dx = gamma * invstd / M * (M dy - dbeta - xhat dgamma), the batch-statistics BN gradient.
struct BackDataFuncs {
  Func out{"bn_dx"};
  std::vector<Func> perChannel;  // compute_root on CPUs
  std::vector<Argument> args;
};

BackDataFuncs bnBackDataAlgorithm(const KernelSpec& k) {
  BackDataFuncs f;
  Vars v;
  const Dims& d = k.in;
  int64_t C = d[0];
  KernelParams p(k);
  ImageParam dyIn = p.tensor("dy", k.extraIns.empty() ? d : k.extraIns[0]), x = p.tensor("x", d), st = p.fixed("stats", {2, C}),
             g = p.fixed("gamma", {C}), dp = p.fixed("dparams", {2, C}), b = p.fixed("beta", {C});
  Func invstd = bnInvStd(st, k), sd = bnStd(st, k);
  DyAct da = actBackInline(dyIn, k, p, x, st, sd, g, b);
  Func dy = da.dy;
  f.args = p.args();
  Expr M = elemsPerChannel(x, d);
  // gamma * invstd / M per channel, once per call (the division by M was per element).
  Func coef("bn_dx_coef");
  Var c("c");
  coef(c) = g(c) * invstd(c) / M;
  f.perChannel = {invstd, sd};
  f.perChannel.insert(f.perChannel.end(), da.perChannel.begin(), da.perChannel.end());
  f.perChannel.push_back(coef);
  auto grad = [&](Expr dyv, Expr xv, Expr c) {
    Expr xhat = (xv - st(c, 0)) * invstd(c);
    return coef(c) * (M * dyv - dp(c, 1) - xhat * dp(c, 0));
  };
  if (d.size() == 3) f.out(v.x, v.y, v.c, v.n) = grad(dy(v.x, v.y, v.c, v.n), x(v.x, v.y, v.c, v.n), v.c);
  else f.out(v.f, v.n) = grad(dy(v.f, v.n), x(v.f, v.n), v.f);
  return f;
}

// Behind a folded pool, x is split by the window and its phase unrolled, so each pixel's window
// (X / kw, Y / kh) and place in it are its vector's index and constants, and the window's taps are
// dense stride-kw vectors; vectors along x made every tap a gather. MiniVGG's step at batch 128:
// its three such input gradients 1.86-1.87 -> 1.35-1.37 ms (AMD EPYC 26/2, profiled, alternating
// runs). The arithmetic per element is the same: its step at batch 16 writes the same bytes.
void bnBackDataCpu(BackDataFuncs& f, const KernelSpec& k) {
  Vars v;
  for (Func p : f.perChannel) p.compute_root();
  if (poolFolded(k) && k.in.size() == 3 && !k.schedule.flat && k.schedule.task == 0) {
    int kw = (int)k.attrs.kernel[1], kh = (int)k.attrs.kernel[0];
    splitByWindow(f.out, v, kw, kh, rowVectorWidth(k.in[2] / kw, k.schedule.lanes));
    parallelOverPlanes(f.out, v);
    return;
  }
  if (k.in.size() == 3) scheduleSpatial(f.out, k, v);
  else scheduleFlat(f.out, k, v);
}

}  // namespace

// The inputs of the BN kernels. With a fused activation the backward kernels take dy through it:
// piecewise-linear ones recompute y from x, so they read gamma and beta (bnMaskFromX); any other activation
// reads its output y, right after dy.
static bool readsY(const KernelSpec& k) { return !k.act.none() && !bnMaskFromX(k.act); }
ArgNames affineArgs(const KernelSpec&) { return {"input", "scale", "shift"}; }
ArgNames bnStatsArgs(const KernelSpec&) { return {"x"}; }
ArgNames bnApplyArgs(const KernelSpec& k) {
  if (k.residual) return {"x", "stats", "gamma", "beta", "residual"};
  return {"x", "stats", "gamma", "beta"};
}
ArgNames bnBackParamsArgs(const KernelSpec& k) {
  ArgNames a{"dy"};
  if (readsY(k)) a.push_back("y");
  a.insert(a.end(), {"x", "stats"});
  if (bnMaskFromX(k.act)) a.insert(a.end(), {"gamma", "beta"});
  return a;
}
ArgNames bnBackDataArgs(const KernelSpec& k) {
  ArgNames a{"dy"};
  if (readsY(k)) a.push_back("y");
  a.insert(a.end(), {"x", "stats", "gamma", "dparams"});
  if (bnMaskFromX(k.act)) a.push_back("beta");
  return a;
}

Lowered lowerAffine(const KernelSpec& k) { return lowerWithSchedules(k, affineForward(k), affineCpu); }

Lowered lowerBNStats(const KernelSpec& k) { return lowerWithSchedules(k, bnStatsForward(k), bnStatsCpu); }

Lowered lowerBNApply(const KernelSpec& k) { return lowerWithSchedules(k, bnApplyForward(k), bnApplyCpu); }

Lowered lowerBNBackParams(const KernelSpec& k) { return lowerWithSchedules(k, bnBackParamsAlgorithm(k), bnBackParamsCpu); }

Lowered lowerBNBackData(const KernelSpec& k) { return lowerWithSchedules(k, bnBackDataAlgorithm(k), bnBackDataCpu); }

// ---- Plan steps (plan_builder.h) ----

// Inference: a batch norm that no conv absorbed (convPlan folds most) becomes a per-channel
// scale and shift from its running statistics, absorbing an activation.
void batchnormPlan(InferenceBuilder& b, const Node& n) {
  KernelSpec s = b.specOf(n);
  s.kind = KernelKind::Affine;
  std::string label = n.name;
  ConstTensor sc;
  sc.kind = ConstTensor::BNScale;
  sc.shape = {n.shape[0]};
  sc.bnW = b.param(n, ParamRole::Weight);
  sc.bnB = b.param(n, ParamRole::Bias);
  sc.bnMean = b.param(n, ParamRole::RunningMean);
  sc.bnVar = b.param(n, ParamRole::RunningVar);
  sc.eps = n.attrs.eps;
  ConstTensor sh = sc;
  sh.kind = ConstTensor::BNShift;
  int scale = b.newConst(sc), shift = b.newConst(sh);
  NamedArgs args{{"input", b.act(n.inputs[0])}, {"scale", {true, scale}}, {"shift", {true, shift}}};
  int cur = b.absorbAct(n.id, s, label);
  b.emit(s, args, b.g.nodes[cur], label);
}

// A batch norm's gamma and beta as kernel arguments: the live parameters, or ones and zeros for
// batchnorm(affine=false), whose kernels are the affine ones (dparams is then computed and unused).
static KernelArg gammaOf(TrainingBuilder& b, const BNInfo& bi) {
  return b.cst(bi.gamma >= 0 ? b.paramRef(bi.gamma) : b.ones(b.g.nodes[bi.node].shape[0]));
}
static KernelArg betaOf(TrainingBuilder& b, const BNInfo& bi) {
  return b.cst(bi.beta >= 0 ? b.paramRef(bi.beta) : b.zeros(b.g.nodes[bi.node].shape[0]));
}

// Training: batch statistics (BNStats), then BNApply with an absorbed activation. BN + ReLU read
// only by a max pool that tiles it: the pool folds in (foldedPools). One kernel reads x and writes
// the pooled output; y = relu(BN(x)) is never stored, as nothing else reads it (MiniVGG: a write
// and a read of 29 MB per step). A BN read only by an add of its shape leaves its BNApply to the
// add (deferredApply), which makes it with its other operand as a residual and its activation.
void batchnormForward(TrainingBuilder& b, const Node& n) {
  const Graph& g = b.g;
  int x = b.tensorOf[n.inputs[0]];
  const Dims& in = g.nodes[n.inputs[0]].shape;
  std::string label = n.name;
  Group gr = Group::of(n);
  BNInfo bi;
  bi.node = n.id;
  ConstTensor st;
  st.kind = ConstTensor::Stats;
  st.shape = {2, n.shape[0]};
  bi.stats = gr.stats = b.newConst(st);
  st.kind = ConstTensor::DParams;
  bi.dparams = b.newConst(st);
  bi.gamma = b.param(n, ParamRole::Weight);
  bi.beta = b.param(n, ParamRole::Bias);
  bi.mean = b.param(n, ParamRole::RunningMean);
  bi.var = b.param(n, ParamRole::RunningVar);
  bi.tracked = b.param(n, ParamRole::NumBatchesTracked);
  bi.momentum = n.attrs.momentum;
  bi.elemsPerImage = n.shape.size() == 3 ? n.shape[1] * n.shape[2] : 1;
  b.tp.bns.push_back(bi);
  b.call(b.spec(KernelKind::BNStats, in, {2, n.shape[0]}, n.attrs), {{"x", b.act(x)}}, b.cst(gr.stats), n.name + ".stats", n.id);
  int u = b.soleUser(n.id), pool = u >= 0 && actOf(g.nodes[u]).is("relu") ? b.soleUser(u) : -1;
  bool folds = pool >= 0 && g.nodes[pool].op == OpKind::MaxPool && b.tilesItsInput(g.nodes[pool]);
  // Read only by an add of two tensors of this shape: the add makes the BNApply call (deferredApply).
  bool intoAdd = false;
  if (u >= 0 && !b.done[u] && n.shape.size() == 3 && g.nodes[u].op == OpKind::Add && g.nodes[u].inputs.size() == 2) {
    const Node& add = g.nodes[u];
    int other = add.inputs[0] == n.id ? add.inputs[1] : add.inputs[0];
    // Where both operands are batch norms (a projection shortcut's and the branch's), the later
    // one waits: the earlier is applied as usual and is the residual.
    intoAdd = add.inputs[0] != add.inputs[1] && add.shape == n.shape && g.nodes[other].shape == n.shape &&
              !(g.nodes[other].op == OpKind::BatchNorm && other > n.id);
  }
  int y = b.finishGroup(gr, label, true, folds || intoAdd);
  KernelSpec as = b.spec(KernelKind::BNApply, in, n.shape, n.attrs, b.groups.back().act);
  NamedArgs args{{"x", b.act(x)}, {"stats", b.cst(gr.stats)}, {"gamma", gammaOf(b, bi)}, {"beta", betaOf(b, bi)}};
  if (intoAdd) {
    b.deferredApply[n.id] = {as, args, label};
    return;
  }
  if (folds) {
    const Node& pn = g.nodes[pool];
    b.done[pn.id] = true;
    b.foldedPools.insert(pn.id);
    as.out = pn.shape;
    as.extraIns = {pn.shape};
    as.attrs.kernel[0] = pn.attrs.kernel[0];
    as.attrs.kernel[1] = pn.attrs.kernel[1];
    Group pg;
    pg.op = OpKind::MaxPool;
    pg.head = pg.tail = pn.id;
    y = pg.out = b.tensorOf[pn.id] = b.newTensor(pn.shape, pn.name);
    b.groupOfTail[pn.id] = (int)b.groups.size();
    b.groups.push_back(pg);
    label += "+" + pn.name;
  }
  b.call(as, args, b.act(y), label, n.id);
}

// Backward: dgamma and dbeta (BNBackParams), then dx (BNBackData); dy is a folded max pool's
// gradient when a pool folded into this BN (pooledGrad). With a fused activation both kernels take
// dy through its derivative; which of y, gamma and beta that reads is bnBackParamsArgs' and
// bnBackDataArgs' business.
void batchnormBackward(TrainingBuilder& b, const BackStep& st) {
  const BNInfo* bi = nullptr;
  for (const auto& x : b.tp.bns) if (x.node == st.head.id) bi = &x;
  Attrs ba = st.head.attrs;
  std::vector<Dims> pooled;
  if (auto it = b.pooledGrad.find(st.m); it != b.pooledGrad.end()) {
    const Node& pool = b.g.nodes[it->second];
    ba.kernel[0] = pool.attrs.kernel[0];
    ba.kernel[1] = pool.attrs.kernel[1];
    pooled = {pool.shape};
  }
  NamedArgs in{{"dy", b.act(st.dPre)}, {"y", b.act(st.gr.out)}, {"x", b.act(st.x)}, {"stats", b.cst(st.gr.stats)},
               {"gamma", gammaOf(b, *bi)}, {"beta", betaOf(b, *bi)}};
  KernelSpec sp = b.spec(KernelKind::BNBackParams, st.inShape, {2, st.inShape[0]}, ba, st.actInOp ? st.gr.act : Act());
  sp.extraIns = pooled;
  b.call(sp, in, b.cst(bi->dparams), st.dl + " (gamma, beta)", st.m);
  in.push_back({"dparams", b.cst(bi->dparams)});
  b.giveInput(st, KernelKind::BNBackData, in, ba, st.actInOp ? st.gr.act : Act(), pooled);
}

}  // namespace cnnc::codegen
