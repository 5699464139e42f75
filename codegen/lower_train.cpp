// lower_train.cpp: training kernels: batch-statistics batch norm, and the backward pass of every
// op, each gradient written by hand (REFERENCE.md: Halide's autodiff ran 10-30x below forward
// speed here, and left a stride-2 conv's input gradient as a serial scatter). Scatters are
// turned into gathers: each input element sums the outputs whose windows cover it.
#include <functional>
#include <map>
#include <limits>

#include "lower_util.h"
#include "winograd.h"

namespace cnnc::codegen {

namespace {

// A fixed-size parameter tensor (no batch dimension), dims outermost first.
ImageParam fixedParam(const std::string& name, const Dims& d, Type t = Float(32)) {
  ImageParam p(t, (int)d.size(), name);
  declareDense(p, d, false);
  return p;
}

Expr actDerivFromOutput(Expr y, Act a) {
  switch (a) {
    case Act::Relu: return select(y > 0.0f, 1.0f, 0.0f);
    case Act::Tanh: return 1.0f - y * y;
    case Act::Sigmoid: return y * (1.0f - y);
    default: return Expr(1.0f);
  }
}

// BN over [C,H,W] or [F]: M = batch x H x W elements per channel.
Expr elemsPerChannel(const ImageParam& x, const Dims& d) {
  Expr n = x.dim((int)d.size()).extent();
  return cast<float>(d.size() == 3 ? n * (int)(d[1] * d[2]) : n);
}

Lowered bnStats(const KernelSpec& k) {
  Vars v;
  const Dims& d = k.in;
  ImageParam x = tensorParam("x", d);
  Func out("bn_stats");
  Expr M = elemsPerChannel(x, d);
  Func mean("bn_mean"), var("bn_var");
  Var which("which");
  if (d.size() == 3) {
    RDom r(0, (int)d[2], 0, (int)d[1], 0, x.dim(3).extent(), "r");
    mean(v.c) = sum(x(r.x, r.y, v.c, r.z)) / M;
    Expr dv = x(r.x, r.y, v.c, r.z) - mean(v.c);
    var(v.c) = sum(dv * dv) / M;
  } else {
    RDom r(0, x.dim(1).extent(), "r");
    mean(v.c) = sum(x(v.c, r)) / M;
    Expr dv = x(v.c, r) - mean(v.c);
    var(v.c) = sum(dv * dv) / M;
  }
  if (d.size() == 3 && !k.schedule.gpu) {
    // Large batches (8192 or more values per channel) sum in vector lanes (laneSum): the scalar
    // sums wait on each add, and took 6.7 ms of MiniVGG's step at batch 128 for 0.23 GB read
    // (its 8x8 layers, 8192 values, 0.60 -> 0.30 ms each). Small ones keep the scalar order:
    // there the statistics of ResNet-50's 4x4 layers are ill-conditioned enough that any other
    // rounding moved its step-parity gradients past their bounds (issue 5's notes). On a GPU the
    // two-pass sums are reduced across thread blocks (gpu_schedule.cpp): lane sums would only
    // add work.
    RDom r(0, (int)d[2], 0, (int)d[1], 0, x.dim(3).extent(), "r");
    Func lsum("bn_sum_lanes"), lsq("bn_sq_lanes");
    lsum(v.c) = 0.0f;
    lsum(v.c) += x(r.x, r.y, v.c, r.z);
    Expr dl = x(r.x, r.y, v.c, r.z) - lsum(v.c) / M;
    lsq(v.c) = 0.0f;
    lsq(v.c) += dl * dl;
    Expr large = x.dim(3).extent() * (int)(d[1] * d[2]) >= 8192;
    out(v.c, which) = select(large, select(which == 0, lsum(v.c), lsq(v.c)) / M, select(which == 0, mean(v.c), var(v.c)));
    mean.compute_at(out, v.c);
    var.compute_at(out, v.c);
    lsum.compute_at(out, v.c);
    lsq.compute_at(out, v.c);
    laneSum(lsum, r, (int)d[2], k.schedule);
    laneSum(lsq, r, (int)d[2], k.schedule);
    out.reorder(which, v.c).bound(which, 0, 2).unroll(which).parallel(v.c);
    out.specialize(large);
    declareDense(out.output_buffer(), Dims{2, d[0]}, false);
    return {Pipeline(out), {x}};
  }
  out(v.c, which) = select(which == 0, mean(v.c), var(v.c));
  mean.compute_at(out, v.c);
  var.compute_at(out, v.c);
  out.reorder(which, v.c).bound(which, 0, 2).unroll(which).parallel(v.c);
  Dims od{2, d[0]};
  declareDense(out.output_buffer(), od, false);
  return {Pipeline(out), {x}};
}

// Per-channel terms of batch norm, computed once per call: a square root and a division per
// element held the BN kernels below the memory rate. Each is the exact float the per-element
// expression gave before (IEEE sqrt and division), so results are unchanged bit for bit: the
// step-parity tests of ResNet-50/101 and plain34 move past their bounds with any other rounding.
Func bnStd(const ImageParam& st, const KernelSpec& k) {  // sqrt(var + eps)
  Func f("bn_std");
  Var c("c");
  f(c) = sqrt(st(c, 1) + (float)k.attrs.eps);
  f.compute_root();
  return f;
}

Func bnInvStd(const ImageParam& st, const KernelSpec& k) {  // 1 / sqrt(var + eps)
  Func f("bn_invstd");
  Var c("c");
  f(c) = 1.0f / sqrt(st(c, 1) + (float)k.attrs.eps);
  f.compute_root();
  return f;
}

// The normalised, scaled and shifted x: bnApply's output before its activation. The backward
// kernels behind a folded max pool recompute ReLU's mask with this same expression.
Expr bnNorm(Expr xv, Expr c, const ImageParam& st, Func sd, const ImageParam& g, const ImageParam& b) {
  return (xv - st(c, 0)) / sd(c) * g(c) + b(c);
}

// sign(gamma): bnNorm is increasing in x for gamma > 0 and decreasing for gamma < 0, so a window's
// largest y is at its largest x * sign(gamma) (the keys of the folded max pool's routing).
Expr gammaSign(const ImageParam& g, Expr c) { return select(g(c) > 0.0f, 1.0f, g(c) < 0.0f, -1.0f, 0.0f); }

Lowered bnApply(const KernelSpec& k) {
  Vars v;
  const Dims& d = k.in;
  int64_t C = d[0];
  ImageParam x = tensorParam("x", d), st = fixedParam("stats", {2, C}), g = fixedParam("gamma", {C}), b = fixedParam("beta", {C});
  Func out("bn_apply"), sd = bnStd(st, k);
  if (!k.extraIns.empty()) {
    // A folded kw x kh max pool (train_plan.cpp): the maximum of each window of act(BN(x)),
    // computed from x with the same expression, so the full-size output is never stored.
    int kw = (int)k.attrs.kernel[1], kh = (int)k.attrs.kernel[0];
    Expr m;
    for (int j = 0; j < kw * kh; ++j) {
      Expr e = applyAct(bnNorm(x(v.x * kw + j % kw, v.y * kh + j / kw, v.c, v.n), v.c, st, sd, g, b), k.act);
      m = j == 0 ? e : max(m, e);
    }
    out(v.x, v.y, v.c, v.n) = m;
    scheduleSpatial(out, k, v);
  } else if (d.size() == 3) {
    out(v.x, v.y, v.c, v.n) = applyAct(bnNorm(x(v.x, v.y, v.c, v.n), v.c, st, sd, g, b), k.act);
    scheduleSpatial(out, k, v);
  } else {
    out(v.f, v.n) = applyAct(bnNorm(x(v.f, v.n), v.f, st, sd, g, b), k.act);
    scheduleFlat(out, k, v);
  }
  return finish(out, k, {x, st, g, b});
}

// BN backward kernels with a fused activation (k.act set) apply the activation's gradient inline:
// the separate ActGrad kernel read and wrote a whole tensor for what is one multiply per element.
// ReLU's mask is recomputed from x (maskFromX); other activations read their output y (appended to
// `args` after dy). Behind a folded max pool (poolFolded) dy is the pool's gradient.
bool poolFolded(const KernelSpec& k) { return k.act == Act::Relu && !k.extraIns.empty(); }

// ReLU's mask is recomputed from x (then the kernels read gamma and beta, not y): one tensor less
// to read. Other activations' derivatives need y.
bool maskFromX(const KernelSpec& k) { return k.act == Act::Relu; }

// dy through the activation. ReLU's mask reads x, st, sd (bnStd), g and b.
Func actBackInline(ImageParam dy, const KernelSpec& k, std::vector<Argument>& args, const ImageParam& x, const ImageParam& st, Func sd,
                   const ImageParam& g, const ImageParam& b) {
  if (k.act == Act::None) return Func(dy);
  std::vector<Var> idx;
  for (int i = 0; i < dy.dimensions(); ++i) idx.push_back(Var("i" + std::to_string(i)));
  std::vector<Expr> ix(idx.begin(), idx.end());
  Func f("bn_dy_act");
  if (poolFolded(k)) {
    // dy is the gradient of a kw x kh max pool that tiles y = relu(bnNorm(x)): each window's
    // gradient goes to its first maximum, as maxPoolBackTiled routes it. This replaces the
    // MaxPoolBack kernel and the full-size gradient it wrote (MiniVGG: 2.3 ms per step).
    // The window's maximum is that of x * sign(gamma) (gammaSign; all tied, so the first, for
    // gamma = 0, as y is then constant). Only windows whose maximum is positive pass the ReLU mask below; there the two
    // orders agree except where rounding made two different x equal in y, a tie within one ulp
    // at which either element is a valid subgradient. Recomputing y for each window element
    // instead cost four divisions per element and was slower than the MaxPoolBack it replaces.
    // Element j of a window (scan order, x fastest) is its first maximum when its key exceeds
    // every earlier one and is no less than every later one; written out per j, not as an argmax
    // Func, so the test stays elementwise and vectorises.
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
    return f;
  }
  if (maskFromX(k)) {
    // y > 0 as x * gamma / sd + (beta - mean * gamma / sd) > 0: a multiply-add per element, where
    // bnNorm's division per element held this kernel at its divider's rate (no faster than reading
    // y). The two forms differ only where y is within rounding of 0, where either side of ReLU's
    // kink is a valid subgradient.
    Func scale("bn_mask_scale"), shift("bn_mask_shift");
    Var c("c");
    scale(c) = g(c) / sd(c);
    shift(c) = b(c) - st(c, 0) * scale(c);
    scale.compute_root();
    shift.compute_root();
    f(idx) = select(x(ix) * scale(ix[2]) + shift(ix[2]) > 0.0f, dy(ix), 0.0f);
    return f;
  }
  ImageParam y = tensorParam("y", k.in);
  args.push_back(y);
  f(idx) = dy(ix) * actDerivFromOutput(y(ix), k.act);
  return f;
}

// dgamma and dbeta in one pass (a tuple reduction): two separate sums read dy and y twice.
Lowered bnBackParams(const KernelSpec& k) {
  Vars v;
  const Dims& d = k.in;
  int64_t C = d[0];
  ImageParam dyIn = tensorParam("dy", k.extraIns.empty() ? d : k.extraIns[0]), x = tensorParam("x", d), st = fixedParam("stats", {2, C});
  ImageParam g = fixedParam("gamma", {C}), b = fixedParam("beta", {C});
  std::vector<Argument> args{dyIn};
  Func sd = bnStd(st, k);
  Func dy = poolFolded(k) ? Func() : actBackInline(dyIn, k, args, x, st, sd, g, b);
  args.push_back(x);
  args.push_back(st);
  if (maskFromX(k)) {
    args.push_back(g);
    args.push_back(b);
  }
  Func out("bn_dparams");
  Var which("which");
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
    RDom r(0, (int)pd[2], 0, (int)pd[1], 0, x.dim(3).extent(), "r");
    Expr sgn = gammaSign(g, v.c);
    Expr m;
    for (int j = 0; j < kw * kh; ++j) {
      Expr e = x(r.x * kw + j % kw, r.y * kh + j / kw, v.c, r.z) * sgn;
      m = j == 0 ? e : max(m, e);
    }
    Expr xs = select(sgn == 0.0f, x(r.x * kw, r.y * kh, v.c, r.z), m * sgn);
    Expr dyv = select(bnNorm(xs, v.c, st, sd, g, b) > 0.0f, dyIn(r.x, r.y, v.c, r.z), 0.0f);
    Expr xhat = (xs - st(v.c, 0)) * bnInvStd(st, k)(v.c);
    Func acc("bn_dgamma_dbeta");
    acc(v.c) = Tuple(0.0f, 0.0f);
    acc(v.c) = Tuple(acc(v.c)[0] + dyv * xhat, acc(v.c)[1] + dyv);
    laneSum(acc, r, (int)pd[2], k.schedule);
    out(v.c, which) = select(which == 0, acc(v.c)[0], acc(v.c)[1]);
    acc.compute_at(out, v.c);
  } else if (d.size() == 3) {
    RDom r(0, (int)d[2], 0, (int)d[1], 0, x.dim(3).extent(), "r");
    Expr xhat = (x(r.x, r.y, v.c, r.z) - st(v.c, 0)) / sd(v.c);
    Func acc("bn_dgamma_dbeta");
    acc(v.c) = Tuple(0.0f, 0.0f);
    Expr dyv = dy(r.x, r.y, v.c, r.z);
    acc(v.c) = Tuple(acc(v.c)[0] + dyv * xhat, acc(v.c)[1] + dyv);
    laneSum(acc, r, (int)d[2], k.schedule);
    out(v.c, which) = select(which == 0, acc(v.c)[0], acc(v.c)[1]);
    acc.compute_at(out, v.c);
  } else {
    RDom r(0, x.dim(1).extent(), "r");
    Expr xhat = (x(v.c, r) - st(v.c, 0)) / sd(v.c);
    Func dg("bn_dgamma"), db("bn_dbeta");
    dg(v.c) = sum(dy(v.c, r) * xhat);
    db(v.c) = sum(dy(v.c, r));
    out(v.c, which) = select(which == 0, dg(v.c), db(v.c));
    dg.compute_at(out, v.c);
    db.compute_at(out, v.c);
  }
  out.reorder(which, v.c).bound(which, 0, 2).unroll(which).parallel(v.c);
  declareDense(out.output_buffer(), Dims{2, C}, false);
  return {Pipeline(out), args};
}

// dx = gamma * invstd / M * (M dy - dbeta - xhat dgamma), the batch-statistics BN gradient.
Lowered bnBackData(const KernelSpec& k) {
  Vars v;
  const Dims& d = k.in;
  int64_t C = d[0];
  ImageParam dyIn = tensorParam("dy", k.extraIns.empty() ? d : k.extraIns[0]), x = tensorParam("x", d), st = fixedParam("stats", {2, C}),
             g = fixedParam("gamma", {C}), dp = fixedParam("dparams", {2, C}), b = fixedParam("beta", {C});
  std::vector<Argument> args{dyIn};
  Func invstd = bnInvStd(st, k), sd = bnStd(st, k);
  Func dy = actBackInline(dyIn, k, args, x, st, sd, g, b);
  for (Argument a : {Argument(x), Argument(st), Argument(g), Argument(dp)}) args.push_back(a);
  if (maskFromX(k)) args.push_back(b);
  Expr M = elemsPerChannel(x, d);
  // gamma * invstd / M per channel, once per call (the division by M was per element).
  Func coef("bn_dx_coef");
  Var c("c");
  coef(c) = g(c) * invstd(c) / M;
  coef.compute_root();
  auto grad = [&](Expr dyv, Expr xv, Expr c) {
    Expr xhat = (xv - st(c, 0)) * invstd(c);
    return coef(c) * (M * dyv - dp(c, 1) - xhat * dp(c, 0));
  };
  Func out("bn_dx");
  if (d.size() == 3) {
    out(v.x, v.y, v.c, v.n) = grad(dy(v.x, v.y, v.c, v.n), x(v.x, v.y, v.c, v.n), v.c);
    scheduleSpatial(out, k, v);
  } else {
    out(v.f, v.n) = grad(dy(v.f, v.n), x(v.f, v.n), v.f);
    scheduleFlat(out, k, v);
  }
  return finish(out, k, args);
}

// The output position whose window tap (r.x, r.y) lands on input pixel (x, y):
// o * stride = x + pad - tap * dilation, valid when that division is exact and o is in range.
// `ox`, `oy` are clamped, so they can index dy whatever `valid` says.
struct TapSource {
  Expr ox, oy, valid;
};

TapSource tapSource(Vars& v, const RDom& r, const Attrs& a, int64_t Ho, int64_t Wo) {
  Expr tx = v.x + (int)a.pad[1] - r.x * (int)a.dilation[1];
  Expr ty = v.y + (int)a.pad[0] - r.y * (int)a.dilation[0];
  int sx = (int)a.stride[1], sy = (int)a.stride[0];
  Expr ox = tx / sx, oy = ty / sy;  // Halide division floors, so negative tx fails the range test
  Expr valid = tx >= 0 && ty >= 0 && ox < (int)Wo && oy < (int)Ho;
  if (sx > 1) valid = valid && tx % sx == 0;
  if (sy > 1) valid = valid && ty % sy == 0;
  return {clamp(ox, 0, (int)Wo - 1), clamp(oy, 0, (int)Ho - 1), valid};
}

// Input gradient of a strided conv (dilation 1), split by phase. Input pixel (s*qx + px, s*qy + py)
// receives dy only from the taps kx = px + pad (mod s), ky likewise, at ox = qx + (px + pad - kx) / s.
// The algorithm:
//  1. dy is zero-extended and materialised once per image (dyz), shared by all phases.
//  2. Each of the s*s phases is a stride-1 conv of dyz with its sub-kernel of every s-th tap, over the
//     phase's grid of ceil((W - px) / s) x ceil((H - py) / s) pixels. It is computed per image and
//     scheduled like a conv of that grid's shape (channel vectors when the grid's rows are narrow).
//     A phase that no tap reaches (a 1x1 stride-2 conv's odd pixels) is zero.
//  3. The output interleaves the phase grids: x = s*qx + px, with px unrolled so the phase is known.
// The upsampled form (convBackData below) spent (s*s - 1) / (s*s) of its FMAs on inserted zeros:
// TinyResNet's three stride-2 3x3 input gradients took 13-15 ms each against 8 for a stride-1 layer.
Lowered convBackDataPhases(const KernelSpec& k) {
  Vars v;
  const Attrs& a = k.attrs;
  int O = (int)k.in[0], Ho = (int)k.in[1], Wo = (int)k.in[2];   // dy [O,Ho,Wo]
  int C = (int)k.out[0], H = (int)k.out[1], W = (int)k.out[2];  // dx [C,H,W]
  int cig = C / (int)a.groups, cog = O / (int)a.groups;
  int kh = (int)a.kernel[0], kw = (int)a.kernel[1], sy = (int)a.stride[0], sx = (int)a.stride[1];
  ImageParam dy = tensorParam("dy", k.in);
  ImageParam w = fixedParam("weight", {O, cig, kh, kw});
  Func dyz = zeroPadded(dy, Wo, Ho, 0, 0, k.schedule, "convbd_dyz");
  Expr g = a.groups == 1 ? Expr(0) : v.c / cig;
  Expr cl = a.groups == 1 ? Expr(v.c) : v.c % cig;
  std::map<int, Func> blocked;  // channel-vector phases read the weights blocked by T (one copy per T)
  std::vector<Func> phase;
  Func out("conv_dx");
  for (int py = 0; py < sy; ++py)
    for (int px = 0; px < sx; ++px) {
      std::string tag = "_p" + std::to_string(px) + std::to_string(py);
      int k0x = (px + (int)a.pad[1]) % sx, k0y = (py + (int)a.pad[0]) % sy;  // first tap of the phase
      int nx = k0x < kw ? (kw - k0x + sx - 1) / sx : 0, ny = k0y < kh ? (kh - k0y + sy - 1) / sy : 0;
      int bx = (px + (int)a.pad[1] - k0x) / sx, by = (py + (int)a.pad[0] - k0y) / sy;
      int Wq = (W - px + sx - 1) / sx, Hq = (H - py + sy - 1) / sy;
      Func P("conv_dx" + tag);
      if (nx == 0 || ny == 0 || Wq <= 0 || Hq <= 0) {
        P(v.x, v.y, v.c, v.n) = 0.0f;
        phase.push_back(P);
        continue;
      }
      KernelSpec ks = k;  // the phase as a conv of its grid's shape, for its schedule
      ks.out = {C, Hq, Wq};
      Schedule sc = defaultSchedule(ks, k.schedule.lanes);
      RDom r(0, nx, 0, ny, 0, cog, "r" + tag);
      Expr co = g * cog + r.z, kx = k0x + sx * r.x, ky = k0y + sy * r.y;
      Expr wv = w(kx, ky, cl, co);
      Func wcopy;
      if (sc.chanVec) {
        int T = sc.vec * sc.chanVec;
        if (!blocked.count(T)) {
          blocked[T] = blockedCopy(w, T, true, "weight_blocked" + std::to_string(T));
          wcopy = blocked[T];  // scheduled once, with the first phase that reads it
        }
        wv = blockedWeights(blocked[T], T)(v.c, kx, ky, co);
      }
      Func acc("convbd_acc" + tag);
      acc(v.x, v.y, v.c, v.n) = 0.0f;
      acc(v.x, v.y, v.c, v.n) += dyz(v.x + bx - r.x, v.y + by - r.y, co, v.n) * wv;
      P(v.x, v.y, v.c, v.n) = acc(v.x, v.y, v.c, v.n);
      P.compute_at(out, v.n).bound(v.x, 0, Wq).bound(v.y, 0, Hq).bound(v.c, 0, C);
      if (sc.chanVec) scheduleConvChannels(P, acc, wcopy, r, sc, v, Func(), true);
      else scheduleConvTile(P, acc, r, sc, C, v, Func(), true);
      phase.push_back(P);
    }
  // A phase's grid is one pixel shorter than ceil(W / s) when s does not divide W; the guarded
  // tail of the interleave still asks for that pixel (its value unused), so the index is clamped.
  auto read = [&](int i) {
    int px = i % sx, py = i / sx, Wq = (W - px + sx - 1) / sx, Hq = (H - py + sy - 1) / sy;
    Expr qx = v.x / sx, qy = v.y / sy;
    if (Wq < (W + sx - 1) / sx) qx = min(qx, std::max(Wq - 1, 0));
    if (Hq < (H + sy - 1) / sy) qy = min(qy, std::max(Hq - 1, 0));
    return phase[i](qx, qy, v.c, v.n);
  };
  Expr val = read((int)phase.size() - 1);
  for (int i = (int)phase.size() - 2; i >= 0; --i) val = select(v.x % sx == i % sx && v.y % sy == i / sx, read(i), val);
  out(v.x, v.y, v.c, v.n) = val;
  Var qx("qx"), qy("qy"), ux("ux"), uy("uy");
  out.split(v.x, qx, ux, sx, TailStrategy::GuardWithIf).split(v.y, qy, uy, sy, TailStrategy::GuardWithIf)
      .reorder(qx, ux, uy, qy, v.c, v.n).unroll(ux).unroll(uy);
  if (k.schedule.lanes >= 8 && (W / sx) >= 8) out.vectorize(qx, 8, TailStrategy::GuardWithIf);
  else if ((W / sx) >= 4) out.vectorize(qx, 4, TailStrategy::GuardWithIf);
  dyz.compute_at(out, v.n);
  out.specialize(out.output_buffer().dim(3).extent() >= 8).parallel(v.n);
  return finish(out, k, {dy, w});
}

// Input gradient of a conv: input pixel (x, y) receives dy at every output position whose tap
// (kx, ky) lands on it, ox * s = x + p - kx * d; computed as a stride-1 conv over upsampled dy.
// Strided convs without dilation take convBackDataPhases instead.
Lowered convBackData(const KernelSpec& k) {
  const Attrs& a = k.attrs;
  if (k.schedule.winograd) return convWinograd(k);
  if ((a.stride[0] > 1 || a.stride[1] > 1) && a.dilation[0] == 1 && a.dilation[1] == 1) return convBackDataPhases(k);
  Vars v;
  const Dims& dyd = k.in;   // [O,Ho,Wo]
  const Dims& dxd = k.out;  // [C,H,W]
  int64_t O = dyd[0], Ho = dyd[1], Wo = dyd[2], C = dxd[0];
  int64_t cig = C / a.groups, cog = O / a.groups;
  ImageParam dy = tensorParam("dy", dyd);
  ImageParam w = fixedParam("weight", {O, cig, a.kernel[0], a.kernel[1]});
  RDom r(0, (int)a.kernel[1], 0, (int)a.kernel[0], 0, (int)cog, "r");
  Expr g = a.groups == 1 ? Expr(0) : v.c / (int)cig;
  Expr co = g * (int)cog + r.z;
  Func acc("convbd_acc"), out("conv_dx"), dyz("convbd_dyz");
  acc(v.x, v.y, v.c, v.n) = 0.0f;
  // dy is zero-extended and, for strides above 1, zero-upsampled (dy[oy, ox] lands at (oy*s, ox*s)),
  // then materialised per image: the input gradient becomes a stride-1 conv with the flipped kernel
  // whose every tap is a dense vector load. Upsampling wastes (s*s - 1)/(s*s) of the FMAs; a gather
  // of single floats under a per-lane test, the alternative, was 5-10x slower here.
  int sx = (int)a.stride[1], sy = (int)a.stride[0];
  Var ux("ux"), uy("uy"), uc("uc"), un("un");
  Expr inside = ux >= 0 && uy >= 0 && ux < (int)Wo * sx && uy < (int)Ho * sy;
  if (sx > 1) inside = inside && ux % sx == 0;
  if (sy > 1) inside = inside && uy % sy == 0;
  if (sx == 1 && sy == 1) dyz = zeroPadded(dy, (int)Wo, (int)Ho, 0, 0, k.schedule, "convbd_dyz");
  else dyz(ux, uy, uc, un) = select(inside, dy(clamp(ux / sx, 0, (int)Wo - 1), clamp(uy / sy, 0, (int)Ho - 1), uc, un), 0.0f);
  // With channel vectors the weights are read through a copy in blocks of T input channels.
  Func wcopy;
  Expr cl = a.groups == 1 ? Expr(v.c) : v.c % (int)cig;
  Expr wv = w(r.x, r.y, cl, co);
  if (k.schedule.chanVec) {
    int T = k.schedule.vec * k.schedule.chanVec;
    wcopy = blockedCopy(w, T, true);
    wv = blockedWeights(wcopy, T)(v.c, r.x, r.y, co);
  }
  acc(v.x, v.y, v.c, v.n) += dyz(v.x + (int)a.pad[1] - r.x * (int)a.dilation[1], v.y + (int)a.pad[0] - r.y * (int)a.dilation[0], co, v.n) * wv;
  out(v.x, v.y, v.c, v.n) = acc(v.x, v.y, v.c, v.n);
  if (k.schedule.chanVec) scheduleConvChannels(out, acc, wcopy, r, k.schedule, v, dyz);
  else scheduleConvTile(out, acc, r, k.schedule, (int)C, v, dyz);
  return finish(out, k, {dy, w});
}

// The register tile of the weight gradient: cv vectors of vec output channels x kw x kyt taps x cit
// input channels. At most ~24 accumulators of AVX-512's 32 registers, leaving room for the dy
// vectors and the broadcast pixel. 3x3: 2 vectors x 9 taps; 1x1: 2 vectors x 8 input channels.
// On NEON (4 lanes) a vector is one 4-float register, so the same count of vectors fits.
struct BackWeightTile {
  int vec, cv, kyt, cit;
};

BackWeightTile backWeightTile(const KernelSpec& k) {
  int C = (int)k.in[0], O = (int)k.extraIns[0][0], kh = (int)k.attrs.kernel[0], kw = (int)k.attrs.kernel[1];
  BackWeightTile t;
  t.vec = k.schedule.lanes < 16 ? 4 : O >= 16 ? 16 : O >= 8 ? 8 : 4;
  t.cv = O >= 2 * t.vec ? 2 : 1;
  t.kyt = t.cv * kw * kh <= 24 ? kh : 1;
  t.cit = 1;
  for (int c : {8, 4, 2})
    if (C % c == 0 && t.cv * kw * t.kyt * c <= 24) { t.cit = c; break; }
  return t;
}

// Grouped convs: dw[co, ci, ky, kx] = sum over batch and output positions of dy * the input pixel
// under the tap, one task per output channel (a lane-varying group would make the tiled form gather).
Lowered convBackWeightGrouped(const KernelSpec& k) {
  Vars v;
  const Attrs& a = k.attrs;
  const Dims& xd = k.in;         // [C,H,W]
  const Dims& dyd = k.extraIns[0];  // [O,Ho,Wo]
  int64_t C = xd[0], H = xd[1], W = xd[2], O = dyd[0];
  int64_t cig = C / a.groups, cog = O / a.groups;
  ImageParam dy = tensorParam("dy", dyd), x = tensorParam("x", xd);
  Func src("convbw_src");
  if (a.pad[0] || a.pad[1]) src = BoundaryConditions::constant_exterior(x, 0.0f, {{0, (int)W}, {0, (int)H}});
  else src(v.x, v.y, v.c, v.n) = x(v.x, v.y, v.c, v.n);
  Var kx("kx"), ky("ky"), ci("ci"), co("co");
  RDom r(0, (int)dyd[2], 0, (int)dyd[1], 0, dy.dim(3).extent(), "r");
  Expr g = a.groups == 1 ? Expr(0) : co / (int)cog;
  Func acc("convbw_acc"), out("conv_dw");
  acc(kx, ky, ci, co) = 0.0f;
  acc(kx, ky, ci, co) += dy(r.x, r.y, co, r.z) *
      src(r.x * (int)a.stride[1] + kx * (int)a.dilation[1] - (int)a.pad[1], r.y * (int)a.stride[0] + ky * (int)a.dilation[0] - (int)a.pad[0],
          g * (int)cig + ci, r.z);
  out(kx, ky, ci, co) = acc(kx, ky, ci, co);
  // Each task owns one output channel's weights: no two threads write the same gradient.
  out.parallel(co);
  acc.compute_at(out, co);
  acc.update().reorder(kx, ky, ci, r.x, r.y, r.z);
  declareDense(out.output_buffer(), Dims{O, cig, a.kernel[0], a.kernel[1]}, false);
  return {Pipeline(out), {dy, x}};
}

// The inputs of an ungrouped conv's weight gradient, arranged for its register tiles: dy transposed
// channels-innermost (dyT(co, ox, oy, n), channels clamped because tiles round O up) and x zero-padded
// (xpad(x, y, c, n), shifted by the padding).
struct WeightGradSources {
  ImageParam dy, x;
  Func dyRows{"convbw_dyrows"}, dyT{"convbw_dyT"}, xpad{"convbw_xpad"};
};

WeightGradSources weightGradSources(const KernelSpec& k) {
  const Attrs& a = k.attrs;
  const Dims& xd = k.in;            // [C,H,W]
  const Dims& dyd = k.extraIns[0];  // [O,Ho,Wo]
  WeightGradSources s{tensorParam("dy", dyd), tensorParam("x", xd)};
  Var co("co"), ox("ox"), oy("oy"), n("n"), xx("xx"), yy("yy"), c("c");
  s.dyRows(co, ox, oy, n) = s.dy(ox, oy, clamp(co, 0, (int)dyd[0] - 1), n);
  s.dyT(co, ox, oy, n) = s.dyRows(co, ox, oy, n);
  s.xpad = zeroPadded(s.x, (int)xd[2], (int)xd[1], (int)a.pad[1], (int)a.pad[0], k.schedule, "convbw_xpad");
  return s;
}

// dyT computed at `at`, transposed in B x B blocks through registers: dyRows loads B rows of B
// columns as dense vectors into a register tile, and dyT stores B channel vectors read across
// them (shuffles). Without this, each transposed float was a scatter or gather lane: 1.4 cycles
// per float, a fifth of MiniVGG's 32-channel weight gradients and most of its 3-channel one.
// B = 16 where rows hold 16 columns and vectors are 16 wide, 8 at 8; otherwise channel vectors
// gathered from dy.
void scheduleTranspose(WeightGradSources& s, Func at, VarOrRVar where, int vec, int Wo) {
  if (where.is_rvar) s.dyT.compute_at(at, where.rvar);
  else s.dyT.compute_at(at, where.var);
  int B = vec >= 16 && Wo >= 16 ? 16 : vec >= 8 && Wo >= 8 ? 8 : 0;
  if (!B) {
    s.dyT.vectorize(s.dyT.args()[0], vec, TailStrategy::RoundUp);
    return;
  }
  Var co = s.dyT.args()[0], ox = s.dyT.args()[1], coo("tco"), coi("tci"), oxo("tox"), oxi("txi");
  s.dyT.split(co, coo, coi, B, TailStrategy::RoundUp).split(ox, oxo, oxi, B, TailStrategy::ShiftInwards)
      .reorder(coi, oxi, coo, oxo).vectorize(coi).unroll(oxi);
  s.dyRows.compute_at(s.dyT, coo).store_in(MemoryType::Register).vectorize(s.dyRows.args()[1]).unroll(s.dyRows.args()[0]);
}

// The gradient leaves in PyTorch's [O, C, kh, kw] layout while the sums hold output channels
// innermost: a transpose of an O x (C kh kw) matrix. Element by element (parallel over co, kx
// innermost) every read touched another cache line: 14% of ResNet-18's 512-channel weight gradient
// (9.4 MiB) at batch 8. In blocks of 16 x 16, a block's 16 lines of each side stay in L1.
void scheduleWeightOut(Func out) {
  Var kx = out.args()[0], ky = out.args()[1], ci = out.args()[2], co = out.args()[3];
  Var kxy("kxy"), f("f"), fo("fo"), fi("fi"), coo("coo"), coi("coi");
  out.fuse(kx, ky, kxy).fuse(kxy, ci, f)
      .split(f, fo, fi, 16, TailStrategy::GuardWithIf).split(co, coo, coi, 16, TailStrategy::GuardWithIf)
      .reorder(fi, coi, fo, coo).vectorize(fi).parallel(coo);
}

// Weight gradient of an ungrouped conv with small outputs (Ho x Wo <= 64: TinyResNet's 8x8 and 4x4
// layers). The per-image form below adds each register tile into its chunk's partial after only
// Ho x Wo positions, so that partial (O x C x taps floats: 2.4 MiB at 256 channels) streamed through
// the caches once per image, and the 4x4 layers ran at half the rate of the 32x32 ones. Here:
//  1. The batch is cut into 2 to 8 chunks of at least 16 images (fewer when N < 32), each a parallel task.
//  2. Per chunk, dy is transposed channels-innermost (dyT) and x padded (xpad), all its images at once.
//  3. Each register tile (the same tiles as convBackWeight) sums over the positions of every image of
//     the chunk, then is stored into the chunk's partial once.
//  4. The partials are summed in chunk order, so the result does not depend on the thread count.
Lowered convBackWeightBatched(const KernelSpec& k) {
  const Attrs& a = k.attrs;
  const Dims& xd = k.in;            // [C,H,W]
  const Dims& dyd = k.extraIns[0];  // [O,Ho,Wo]
  int C = (int)xd[0], O = (int)dyd[0], Ho = (int)dyd[1], Wo = (int)dyd[2];
  int kh = (int)a.kernel[0], kw = (int)a.kernel[1];
  WeightGradSources src = weightGradSources(k);
  ImageParam dy = src.dy, x = src.x;
  Func dyT = src.dyT, xpad = src.xpad;
  Var co("co"), kx("kx"), ky("ky"), ci("ci"), u("u");
  Func acc("convbw_acc"), part("convbw_part"), sum("convbw_sum"), out("conv_dw");
  // At least 16 images per chunk, 2 to 8 chunks: each chunk's partial is O x C x taps floats,
  // 9.4 MiB for ResNet-18's 512-channel layers, and 8 chunks of one image each at batch 8 spent
  // more time writing and summing partials than multiplying.
  Expr N = dy.dim(3).extent(), chunks = clamp(N / 16, 2, 8), per = (N + chunks - 1) / chunks;
  RDom rq(0, Wo, 0, Ho, 0, per, "rq");
  Expr img = u * per + rq.z;
  rq.where(img < N);
  img = min(img, N - 1);  // the same image; bounds inference cannot see the where clause
  acc(co, kx, ky, ci, u) = 0.0f;
  acc(co, kx, ky, ci, u) += dyT(co, rq.x, rq.y, img) *
      xpad(rq.x * (int)a.stride[1] + kx * (int)a.dilation[1], rq.y * (int)a.stride[0] + ky * (int)a.dilation[0], ci, img);
  part(co, kx, ky, ci, u) = acc(co, kx, ky, ci, u);
  RDom ru(0, chunks, "ru");
  sum(co, kx, ky, ci) = 0.0f;
  sum(co, kx, ky, ci) += part(co, kx, ky, ci, ru);
  out(kx, ky, ci, co) = sum(co, kx, ky, ci);

  BackWeightTile t = backWeightTile(k);
  Var coo("coo"), coi("coi"), kyo("kyo"), kyi("kyi"), cio("cio"), cii("cii"), cv_("cvv"), cl("cl");
  part.compute_root()
      .split(co, coo, coi, t.vec * t.cv, TailStrategy::RoundUp)
      .split(ky, kyo, kyi, t.kyt)
      .split(ci, cio, cii, t.cit)
      .reorder(coi, kx, kyi, cii, coo, kyo, cio, u)
      .vectorize(coi, t.vec)
      .parallel(u);
  acc.compute_at(part, coo);
  acc.split(co, cv_, cl, t.vec).vectorize(cl).unroll(cv_).unroll(kx).unroll(ky).unroll(ci);
  acc.update().split(co, cv_, cl, t.vec).reorder(cl, cv_, kx, ky, ci, rq.x, rq.y, rq.z)
      .vectorize(cl).unroll(cv_).unroll(kx).unroll(ky).unroll(ci);
  scheduleTranspose(src, part, u, t.vec, Wo);
  xpad.compute_at(part, u);
  sum.compute_root().vectorize(co, t.vec, TailStrategy::RoundUp);
  sum.update().vectorize(co, t.vec, TailStrategy::RoundUp);
  scheduleWeightOut(out);
  declareDense(out.output_buffer(), Dims{O, C, kh, kw}, false);
  return {Pipeline(out), {dy, x}};
}

// Weight gradient of an ungrouped conv, dw[co, ci, ky, kx] = sum over n, oy, ox of
// dy[n, co, oy, ox] * x[n, ci, oy*s + ky*d - p, ox*s + kx*d - p]. The algorithm:
//  1. Per image, dy is transposed to channels-innermost (dyT) and x padded once (xpad), so the
//     reduction reads one contiguous vector of output channels and broadcasts one input pixel per tap.
//  2. A register tile `part` holds (cv x vec output channels) x (kx, ky, ci taps); it sums over the
//     image's output positions, then is added to a partial of its batch chunk.
//  3. The batch is cut into up to 8 chunks (rfactor), each a parallel task with its own partial, so no
//     two threads write one gradient; the partials are summed at the end and transposed to PyTorch's
//     [O, C, kh, kw] layout.
// The cost of steps 1 and 3 is O(O + C) per pixel against O(O x C x taps) for step 2.
Lowered convBackWeight(const KernelSpec& k) {
  const Attrs& a = k.attrs;
  if (a.groups != 1) return convBackWeightGrouped(k);
  if (k.extraIns[0][1] * k.extraIns[0][2] <= 64) return convBackWeightBatched(k);
  const Dims& xd = k.in;            // [C,H,W]
  const Dims& dyd = k.extraIns[0];  // [O,Ho,Wo]
  int C = (int)xd[0], O = (int)dyd[0], Ho = (int)dyd[1], Wo = (int)dyd[2];
  int kh = (int)a.kernel[0], kw = (int)a.kernel[1];
  WeightGradSources src = weightGradSources(k);
  ImageParam dy = src.dy, x = src.x;
  Func dyT = src.dyT, xpad = src.xpad;
  Var co("co"), kx("kx"), ky("ky"), ci("ci"), n("n"), u("u");
  Func part("convbw_part"), sum("convbw_sum"), out("conv_dw");
  RDom rp(0, Wo, 0, Ho, "rp");
  part(co, kx, ky, ci, n) = 0.0f;
  part(co, kx, ky, ci, n) += dyT(co, rp.x, rp.y, n) *
      xpad(rp.x * (int)a.stride[1] + kx * (int)a.dilation[1], rp.y * (int)a.stride[0] + ky * (int)a.dilation[0], ci, n);
  Expr N = dy.dim(3).extent();
  RDom rn(0, N, "rn");
  sum(co, kx, ky, ci) = 0.0f;
  sum(co, kx, ky, ci) += part(co, kx, ky, ci, rn);
  out(kx, ky, ci, co) = sum(co, kx, ky, ci);

  BackWeightTile t = backWeightTile(k);
  int vec = t.vec, cv = t.cv, kyt = t.kyt, cit = t.cit;
  int T = vec * cv;
  RVar no("no"), ni("ni");
  sum.update().split(rn, no, ni, (N + 7) / 8, TailStrategy::GuardWithIf);
  Func chunk = sum.update().rfactor(no, u);
  Var coo("coo"), coi("coi"), kyo("kyo"), kyi("kyi"), cio("cio"), cii("cii"), cv_("cvv"), cl("cl");
  chunk.compute_root().vectorize(co, vec, TailStrategy::RoundUp);
  chunk.update()
      .split(co, coo, coi, T, TailStrategy::RoundUp)
      .split(ky, kyo, kyi, kyt)
      .split(ci, cio, cii, cit)
      .reorder(coi, kx, kyi, cii, coo, kyo, cio, ni, u)
      .vectorize(coi, vec)
      .parallel(u);
  part.compute_at(chunk, coo);
  part.split(co, cv_, cl, vec).vectorize(cl).unroll(cv_).unroll(kx).unroll(ky).unroll(ci);
  part.update().split(co, cv_, cl, vec).reorder(cl, cv_, kx, ky, ci, rp.x, rp.y)
      .vectorize(cl).unroll(cv_).unroll(kx).unroll(ky).unroll(ci);
  scheduleTranspose(src, chunk, ni, vec, Wo);
  xpad.compute_at(chunk, ni);
  sum.compute_root().vectorize(co, vec, TailStrategy::RoundUp);
  sum.update().vectorize(co, vec, TailStrategy::RoundUp);
  scheduleWeightOut(out);
  declareDense(out.output_buffer(), Dims{O, C, kh, kw}, false);
  return {Pipeline(out), {dy, x}};
}

Lowered biasGrad(const KernelSpec& k) {
  Vars v;
  const Dims& d = k.in;
  ImageParam dy = tensorParam("dy", d);
  Func out("bias_grad");
  if (d.size() == 3) {
    RDom r(0, (int)d[2], 0, (int)d[1], 0, dy.dim(3).extent(), "r");
    out(v.c) = 0.0f;
    out(v.c) += dy(r.x, r.y, v.c, r.z);
    laneSum(out, r, (int)d[2], k.schedule);
    out.update().parallel(v.c);
  } else {
    RDom r(0, dy.dim(1).extent(), "r");
    out(v.c) = sum(dy(v.c, r));
  }
  out.parallel(v.c);
  declareDense(out.output_buffer(), Dims{d[0]}, false);
  return {Pipeline(out), {dy}};
}

Lowered linearBackData(const KernelSpec& k) {
  Vars v;
  int64_t O = k.in[0], F = k.out[0];
  ImageParam dy = tensorParam("dy", k.in), w = fixedParam("weight", {O, F});
  RDom r(0, (int)O, "r");
  Func acc("linear_dx_acc"), out("linear_dx");
  acc(v.f, v.n) = 0.0f;
  acc(v.f, v.n) += w(v.f, r) * dy(r, v.n);
  out(v.f, v.n) = acc(v.f, v.n);
  Var fo("fo"), fi("fi"), no("no"), ni("ni");
  int vec = F >= 16 ? 16 : 1;
  // Batches of 8 and more: a register tile of one vector of inputs x 8 images, so each weight
  // vector feeds 8 FMAs and 8 independent sums hide the FMA latency (one sum at a time waited 4
  // cycles per step: LeNet-5's fc1 input gradient took 0.9 ms). Each sum still runs over r in order.
  Expr N = out.output_buffer().dim(1).extent();
  out.specialize(N >= 8).split(v.f, fo, fi, vec).split(v.n, no, ni, 8).reorder(fi, ni, fo, no).vectorize(fi).unroll(ni).parallel(no);
  out.split(v.f, fo, fi, vec).vectorize(fi).parallel(fo);
  acc.compute_at(out, fo).vectorize(v.f, vec).unroll(v.n);
  acc.update().reorder(v.f, v.n, r).vectorize(v.f, vec).unroll(v.n);
  return finish(out, k, {dy, w});
}

Lowered linearBackWeight(const KernelSpec& k) {
  Vars v;
  const Dims& xd = k.in;          // [F]
  const Dims& dyd = k.extraIns[0]; // [O]
  int64_t F = xd[0], O = dyd[0];
  ImageParam dy = tensorParam("dy", dyd), x = tensorParam("x", xd);
  RDom r(0, x.dim(1).extent(), "r");
  Var o("o");
  Func out("linear_dw");
  out(v.f, o) = sum(dy(o, r) * x(v.f, r));
  int vec = F >= 16 ? 16 : 1;
  Var fo("fo"), fi("fi");
  out.split(v.f, fo, fi, vec).vectorize(fi).parallel(o);
  declareDense(out.output_buffer(), Dims{O, F}, false);
  return {Pipeline(out), {dy, x}};
}

// Elementwise kernels with two batched inputs of the output's shape.
Lowered elementwise2(const KernelSpec& k, const char* a, const char* b, const char* name, std::function<Expr(Expr, Expr)> f) {
  Vars v;
  ImageParam pa = tensorParam(a, k.out), pb = tensorParam(b, k.out);
  bool spatial = k.out.size() == 3;
  std::vector<Var> idx = spatial ? std::vector<Var>{v.x, v.y, v.c, v.n} : std::vector<Var>{v.f, v.n};
  std::vector<Expr> ix(idx.begin(), idx.end());
  Func out(name);
  out(idx) = f(pa(ix), pb(ix));
  if (spatial) scheduleSpatial(out, k, v);
  else scheduleFlat(out, k, v);
  return finish(out, k, {pa, pb});
}

// Max-pool backward when the windows tile the input exactly (kernel == stride, no padding or
// dilation, sizes divisible: VGG's 2x2 pools): pixel (x, y) is tap (x % s, y % s) of window
// (x / s, y / s) and nothing else. The window's first maximum (PyTorch's choice) is found per image,
// and the output runs over windows with the taps unrolled, so every load is a dense vector of
// windows. The general form gathered per pixel from an argmax buffer of the whole batch: 3.8 ms
// for MiniVGG's first pool at batch 128.
Lowered maxPoolBackTiled(const KernelSpec& k) {
  Vars v;
  const Attrs& a = k.attrs;
  int kw = (int)a.kernel[1], kh = (int)a.kernel[0];
  int64_t Wo = k.in[2];
  ImageParam dy = tensorParam("dy", k.in), x = tensorParam("x", k.out);
  RDom q(0, kw, 0, kh, "q");
  Func am("maxpool_argmax"), out("maxpool_dx");
  Var px("px"), py("py");
  Tuple best = argmax(q, x(px * kw + q.x, py * kh + q.y, v.c, v.n));
  am(px, py, v.c, v.n) = best[0] + best[1] * kw;
  out(v.x, v.y, v.c, v.n) = select(am(v.x / kw, v.y / kh, v.c, v.n) == v.x % kw + (v.y % kh) * kw, dy(v.x / kw, v.y / kh, v.c, v.n), 0.0f);
  Var qx("qx"), qy("qy"), tx("tx"), ty("ty");
  out.split(v.x, qx, tx, kw).split(v.y, qy, ty, kh).reorder(tx, qx, ty, qy, v.c, v.n).unroll(tx).unroll(ty);
  int vec = Wo >= 16 ? 16 : Wo >= 8 ? 8 : Wo >= 4 ? 4 : 1;
  if (vec > 1) out.vectorize(qx, vec, TailStrategy::GuardWithIf);
  am.compute_at(out, qy);
  if (vec > 1) am.vectorize(px, vec, TailStrategy::GuardWithIf);
  out.specialize(out.output_buffer().dim(3).extent() >= 8).parallel(v.n);
  out.fuse(v.c, v.n, v.cn).parallel(v.cn);
  return finish(out, k, {dy, x});
}

// Max pools whose windows overlap or have padding (ResNet's 3x3 stride-2 stem pool, GoogLeNet's,
// AlexNet's). The window's first maximum in scan order (rows, then columns) gets the gradient, as
// in PyTorch, which also adds the windows' gradients in window order: here a scatter over the
// windows of each (channel, image) plane, planes in parallel. The gather form (each input summing
// the taps that might have chosen it, with a division and a gather per tap) took 33-37 ms of
// ResNet-18's step at batch 8 for its 3x3 stride-2 pool.
Lowered maxPoolBackScatter(const KernelSpec& k) {
  Vars v;
  const Attrs& a = k.attrs;
  const Dims& dyd = k.in;  // [C,Ho,Wo]
  const Dims& dxd = k.out; // [C,H,W]
  int Ho = (int)dyd[1], Wo = (int)dyd[2], H = (int)dxd[1], W = (int)dxd[2];
  int sx = (int)a.stride[1], sy = (int)a.stride[0], kw = (int)a.kernel[1];
  ImageParam dy = tensorParam("dy", dyd), x = tensorParam("x", dxd);
  Func src = BoundaryConditions::constant_exterior(x, -std::numeric_limits<float>::infinity(), {{0, W}, {0, H}});
  RDom q(0, kw, 0, (int)a.kernel[0], "q");
  Func am("maxpool_argmax");
  Var px("px"), py("py");
  Tuple best = argmax(q, src(px * sx - (int)a.pad[1] + q.x * (int)a.dilation[1], py * sy - (int)a.pad[0] + q.y * (int)a.dilation[0], v.c, v.n));
  am(px, py, v.c, v.n) = best[0] + best[1] * kw;
  RDom w(0, Wo, 0, Ho, "w");
  Expr tap = am(w.x, w.y, v.c, v.n);
  // A window's maximum is never in its padding (PyTorch keeps every window's start inside), so
  // the clamps only tell bounds inference where the writes land.
  Expr tx = clamp(w.x * sx - (int)a.pad[1] + (tap % kw) * (int)a.dilation[1], 0, W - 1);
  Expr ty = clamp(w.y * sy - (int)a.pad[0] + (tap / kw) * (int)a.dilation[0], 0, H - 1);
  Func out("maxpool_dx");
  out(v.x, v.y, v.c, v.n) = 0.0f;
  out(tx, ty, v.c, v.n) += dy(w.x, w.y, v.c, v.n);
  int vec = W >= 16 && k.schedule.lanes >= 16 ? 16 : W >= 8 ? 8 : 1;
  if (vec > 1) out.vectorize(v.x, vec, TailStrategy::GuardWithIf);
  out.fuse(v.c, v.n, v.cn).parallel(v.cn);
  out.update().reorder(w.x, w.y, v.c, v.n).fuse(v.c, v.n, v.cn).parallel(v.cn);
  am.compute_at(out, v.cn).vectorize(px, Wo >= 16 && k.schedule.lanes >= 16 ? 16 : 8, TailStrategy::GuardWithIf);
  return finish(out, k, {dy, x});
}

Lowered poolBack(const KernelSpec& k) {
  Vars v;
  const Attrs& a = k.attrs;
  if (k.kind == KernelKind::MaxPoolBack) {
    bool tiled = a.kernel[0] == a.stride[0] && a.kernel[1] == a.stride[1] && a.pad[0] == 0 && a.pad[1] == 0 &&
                 a.dilation[0] == 1 && a.dilation[1] == 1 && k.out[1] % a.stride[0] == 0 && k.out[2] % a.stride[1] == 0 &&
                 k.in[1] * a.stride[0] == k.out[1] && k.in[2] * a.stride[1] == k.out[2];
    return tiled ? maxPoolBackTiled(k) : maxPoolBackScatter(k);
  }
  // Average pools: each input sums the windows that contain it, each divided by its count.
  const Dims& dyd = k.in;  // [C,Ho,Wo]
  const Dims& dxd = k.out; // [C,H,W]
  int64_t Ho = dyd[1], Wo = dyd[2], H = dxd[1], W = dxd[2];
  ImageParam dy = tensorParam("dy", dyd);
  int sx = (int)a.stride[1], sy = (int)a.stride[0];
  RDom r(0, (int)a.kernel[1], 0, (int)a.kernel[0], "r");
  TapSource t = tapSource(v, r, a, Ho, Wo);
  Expr valid = t.valid, cx = t.ox, cy = t.oy;
  Expr x0 = cx * sx - (int)a.pad[1], y0 = cy * sy - (int)a.pad[0];
  Expr x1 = min(x0 + (int)a.kernel[1], (int)(W + a.pad[1])), y1 = min(y0 + (int)a.kernel[0], (int)(H + a.pad[0]));
  Expr padded = (x1 - x0) * (y1 - y0);
  Expr inside = (min(x1, (int)W) - max(x0, 0)) * (min(y1, (int)H) - max(y0, 0));
  Expr div = a.countIncludePad ? padded : inside;
  Func out("avgpool_dx");
  out(v.x, v.y, v.c, v.n) = sum(select(valid, dy(cx, cy, v.c, v.n) / cast<float>(div), 0.0f));
  scheduleSpatial(out, k, v);
  return finish(out, k, {dy});
}

Lowered adaptiveAvgBack(const KernelSpec& k) {
  Vars v;
  const Dims& dyd = k.in;
  const Dims& dxd = k.out;
  int64_t OH = dyd[1], OW = dyd[2], H = dxd[1], W = dxd[2];
  ImageParam dy = tensorParam("dy", dyd);
  // Output windows containing row y start at most 1 + OH / H positions before floor(y * OH / H).
  int cy = (int)((OH + H - 1) / H + 2), cx = (int)((OW + W - 1) / W + 2);
  RDom r(0, cx, 0, cy, "r");
  Expr oy = clamp(v.y * (int)OH / (int)H - 1 + r.y, 0, (int)OH - 1), ox = clamp(v.x * (int)OW / (int)W - 1 + r.x, 0, (int)OW - 1);
  Expr rawy = v.y * (int)OH / (int)H - 1 + r.y, rawx = v.x * (int)OW / (int)W - 1 + r.x;
  Expr y0 = (oy * (int)H) / (int)OH, y1 = ((oy + 1) * (int)H + (int)OH - 1) / (int)OH;
  Expr x0 = (ox * (int)W) / (int)OW, x1 = ((ox + 1) * (int)W + (int)OW - 1) / (int)OW;
  Expr inside = rawy == oy && rawx == ox && v.y >= y0 && v.y < y1 && v.x >= x0 && v.x < x1;
  Func out("adaptiveavg_dx");
  out(v.x, v.y, v.c, v.n) = sum(select(inside, dy(ox, oy, v.c, v.n) / cast<float>((x1 - x0) * (y1 - y0)), 0.0f));
  scheduleSpatial(out, k, v);
  return finish(out, k, {dy});
}

Lowered softmaxBack(const KernelSpec& k) {
  Vars v;
  const Dims& d = k.out;
  ImageParam dy = tensorParam("dy", d), y = tensorParam("y", d);
  RDom r(0, (int)d[0], "r");
  Func dot("softmax_dot"), out("softmax_dx");
  if (d.size() == 1) {
    dot(v.n) = sum(dy(r, v.n) * y(r, v.n));
    out(v.f, v.n) = y(v.f, v.n) * (dy(v.f, v.n) - dot(v.n));
    dot.compute_at(out, v.n);
    out.parallel(v.n);
  } else {
    dot(v.x, v.y, v.n) = sum(dy(v.x, v.y, r, v.n) * y(v.x, v.y, r, v.n));
    out(v.x, v.y, v.c, v.n) = y(v.x, v.y, v.c, v.n) * (dy(v.x, v.y, v.c, v.n) - dot(v.x, v.y, v.n));
    dot.compute_at(out, v.n);
    out.parallel(v.n);
  }
  return finish(out, k, {dy, y});
}

// Local response normalisation (PyTorch's LocalResponseNorm): b_c = a_c * s_c^-beta with
// s_c = k + alpha/n * sum of a^2 over the channel window [c - n/2, c + (n-1)/2] (zero outside).
// Its input gradient, as a gather over the channels whose windows hold channel c, [c - (n-1)/2, c + n/2]:
//   dx_c = dy_c * s_c^-beta - 2 alpha beta / n * a_c * sum_{c'} dy_c' * a_c' * s_c'^(-beta-1).
// s, s^-beta and the summand t are computed per row for a block of channels plus its halo, so each
// pow runs about once per element instead of n times.
Lowered lrnBack(const KernelSpec& k) {
  Vars v;
  const Attrs& a = k.attrs;
  const Dims& d = k.out;  // [C,H,W]
  int C = (int)d[0], n = (int)a.size;
  ImageParam dy = tensorParam("dy", d), x = tensorParam("x", d);
  RDom r(0, n, "r");
  Expr cc = v.c - n / 2 + r;
  Expr xc = x(v.x, v.y, clamp(cc, 0, C - 1), v.n);
  Func s("lrn_s"), p("lrn_p"), t("lrn_t"), out("lrn_dx");
  s(v.x, v.y, v.c, v.n) = (float)a.k + (float)(a.alpha / n) * sum(select(cc >= 0 && cc < C, xc * xc, 0.0f));
  p(v.x, v.y, v.c, v.n) = pow(s(v.x, v.y, v.c, v.n), -(float)a.beta);
  t(v.x, v.y, v.c, v.n) = dy(v.x, v.y, v.c, v.n) * x(v.x, v.y, v.c, v.n) * p(v.x, v.y, v.c, v.n) / s(v.x, v.y, v.c, v.n);
  RDom q(0, n, "q");
  Expr co = v.c - (n - 1) / 2 + q;
  Expr back = sum(select(co >= 0 && co < C, t(v.x, v.y, clamp(co, 0, C - 1), v.n), 0.0f));
  out(v.x, v.y, v.c, v.n) = dy(v.x, v.y, v.c, v.n) * p(v.x, v.y, v.c, v.n) - (float)(2.0 * a.alpha * a.beta / n) * x(v.x, v.y, v.c, v.n) * back;
  // Parallel over (channel block, image) like scheduleSpatial's (channel, image), vectorised along x.
  Var cb("cb"), ci("ci"), cbn("cbn");
  int blk = std::min(C, 16);
  out.split(v.c, cb, ci, blk, TailStrategy::GuardWithIf).reorder(v.x, ci, v.y, cb, v.n).fuse(cb, v.n, cbn).parallel(cbn);
  int vec = k.schedule.vec;
  if (vec > 1) out.vectorize(v.x, vec);
  for (Func f : {s, p, t}) {
    f.compute_at(out, v.y);
    if (vec > 1) f.vectorize(v.x, vec);
  }
  return finish(out, k, {dy, x});
}

Lowered slice(const KernelSpec& k) {
  Vars v;
  ImageParam dy = tensorParam("dy", k.in);
  int start = (int)k.attrs.size;
  Func out("slice");
  if (k.out.size() == 3) {
    out(v.x, v.y, v.c, v.n) = dy(v.x, v.y, v.c + start, v.n);
    scheduleSpatial(out, k, v);
  } else {
    out(v.f, v.n) = dy(v.f + start, v.n);
    scheduleFlat(out, k, v);
  }
  return finish(out, k, {dy});
}

// Dropout mask from a counter-based hash of (seed, element index): the same mask in forward and
// backward, and the same for a resumed run, with no mask stored.
Expr keepMask(Expr idx, const ImageParam& seed, float p) {
  auto u32 = [](uint32_t v) { return Halide::Internal::UIntImm::make(UInt(32), v); };
  Expr h = (cast<uint32_t>(idx) * u32(0x9E3779B1u)) ^ cast<uint32_t>(seed(0)) ^ (cast<uint32_t>(seed(1)) * u32(0x85EBCA6Bu));
  h = (h ^ (h >> 16)) * u32(0x7FEB352Du);
  h = (h ^ (h >> 15)) * u32(0x846CA68Bu);
  h = h ^ (h >> 16);
  Expr u = cast<float>(h >> 8) * (1.0f / 16777216.0f);
  return select(u >= p, 1.0f / (1.0f - p), 0.0f);
}

Lowered dropout(const KernelSpec& k) {
  Vars v;
  const Dims& d = k.out;
  ImageParam in = tensorParam(k.kind == KernelKind::DropoutFwd ? "x" : "dy", d);
  ImageParam seed = fixedParam("seed", {2}, Int(32));
  float p = (float)k.attrs.p;
  Func out(k.kind == KernelKind::DropoutFwd ? "dropout" : "dropout_dx");
  if (d.size() == 3) {
    Expr idx = ((v.n * (int)d[0] + v.c) * (int)d[1] + v.y) * (int)d[2] + v.x;
    out(v.x, v.y, v.c, v.n) = p >= 1.0f ? Expr(0.0f) : in(v.x, v.y, v.c, v.n) * keepMask(idx, seed, p);
    scheduleSpatial(out, k, v);
  } else {
    Expr idx = v.n * (int)d[0] + v.f;
    out(v.f, v.n) = p >= 1.0f ? Expr(0.0f) : in(v.f, v.n) * keepMask(idx, seed, p);
    scheduleFlat(out, k, v);
  }
  return finish(out, k, {in, seed});
}

// Cross-entropy with label smoothing eps over K classes, mean over the batch:
// loss_n = -sum_k t_k log softmax(z)_k with t = (1 - eps) onehot(label) + eps / K.
Lowered crossEntropy(const KernelSpec& k) {
  Vars v;
  int64_t K = k.in[0];
  ImageParam z = tensorParam("logits", k.in), lab = tensorParam("labels", {1}), eps = fixedParam("eps", {1});
  RDom r(0, (int)K, "r");
  Func mx("ce_max"), lse("ce_lse"), out(k.kind == KernelKind::CELoss ? "ce_loss" : "ce_grad");
  mx(v.n) = maximum(z(r, v.n));
  lse(v.n) = log(sum(exp(z(r, v.n) - mx(v.n)))) + mx(v.n);
  Expr label = cast<int>(lab(0, v.n));
  Expr e = eps(0);
  if (k.kind == KernelKind::CELoss) {
    Expr nll = lse(v.n) - z(clamp(label, 0, (int)K - 1), v.n);
    Expr smooth = lse(v.n) - sum(z(r, v.n)) / (float)K;
    out(v.f, v.n) = (1.0f - e) * nll + e * smooth;
    mx.compute_at(out, v.n);
    lse.compute_at(out, v.n);
  } else {
    Expr n = cast<float>(z.dim(1).extent());
    Expr target = select(v.f == label, 1.0f - e, 0.0f) + e / (float)K;
    out(v.f, v.n) = (exp(z(v.f, v.n) - lse(v.n)) - target) / n;
    mx.compute_at(out, v.n);
    lse.compute_at(out, v.n);
    out.parallel(v.n);
  }
  return finish(out, k, {z, lab, eps});
}

}  // namespace

Lowered lowerTrainingKernel(const KernelSpec& k) {
  switch (k.kind) {
    case KernelKind::BNStats: return bnStats(k);
    case KernelKind::BNApply: return bnApply(k);
    case KernelKind::BNBackParams: return bnBackParams(k);
    case KernelKind::BNBackData: return bnBackData(k);
    case KernelKind::ConvBackData: return convBackData(k);
    case KernelKind::ConvBackWeight: return convBackWeight(k);
    case KernelKind::BiasGrad: return biasGrad(k);
    case KernelKind::LinearBackData: return linearBackData(k);
    case KernelKind::LinearBackWeight: return linearBackWeight(k);
    case KernelKind::ActGrad:
      return elementwise2(k, "dy", "y", "act_dx", [a = k.act](Expr dy, Expr y) { return dy * actDerivFromOutput(y, a); });
    case KernelKind::MaxPoolBack:
    case KernelKind::AvgPoolBack: return poolBack(k);
    case KernelKind::AdaptiveAvgBack: return adaptiveAvgBack(k);
    case KernelKind::SoftmaxBack: return softmaxBack(k);
    case KernelKind::LrnBack: return lrnBack(k);
    case KernelKind::Slice: return slice(k);
    case KernelKind::DropoutFwd:
    case KernelKind::DropoutBack: return dropout(k);
    case KernelKind::CELoss:
    case KernelKind::CEGrad: return crossEntropy(k);
    default: break;
  }
  throw std::runtime_error(std::string("no lowering for kernel kind ") + kernelKindName(k.kind));
}

}  // namespace cnnc::codegen
