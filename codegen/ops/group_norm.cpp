// group_norm.cpp: per-image normalisation over groups of channels: groupnorm (nn.GroupNorm),
// instancenorm (nn.InstanceNorm2d: a group per channel, no affine parameters by default) and
// layernorm on a flat [F] tensor (nn.LayerNorm(F): one group of all features). Unlike batch norm
// the statistics are each image's own, in training and inference alike, and there are no running
// statistics. A group of image n is G's share of its channels with all their pixels, contiguous in
// NCHW.
//
//   GNStats      x[C,H,W] -> st[G,2]: mean, 1 / sqrt(var + eps) (biased variance; sums in double)
//   GNApply      x, st (, gamma[C], beta[C]) -> y = act((x - mean) * rstd (* gamma + beta))
//   GNBackData   dy, x, st (, gamma) -> dx = rstd (g - mean_G(g) - xhat mean_G(g xhat)), g = dy gamma
//   GNBackGamma  dy, x, st -> dgamma[C] = sum over images and pixels of dy * xhat (not batched)
//   (dbeta is the BiasGrad of dy, bias.cpp)
//
// attrs.groups is G; attrs.bias says whether gamma and beta exist (affine). With attrs.normChannels
// (layernorm on [C,H,W], torchvision's LayerNorm2d in ConvNeXt) the statistics are per pixel over
// its C channels instead: st[H,W,2].
#include "gpu.h"
#include "ops.h"
#include "plan_builder.h"

namespace cnnc::codegen {

namespace {

// The per-image tensor as groups: G groups of Cg channels of H x W pixels ([F]: one of F x 1 x 1).
struct GroupView {
  bool flat, channels;  // channels: per pixel, over its C channels
  int C, H, W, G, Cg;
};

GroupView viewOf(const Dims& d, const Attrs& a) {
  GroupView g;
  g.flat = d.size() == 1;
  g.channels = a.normChannels;
  g.C = (int)d[0];
  g.H = g.flat ? 1 : (int)d[1];
  g.W = g.flat ? 1 : (int)d[2];
  g.G = (int)a.groups;
  g.Cg = g.C / g.G;
  return g;
}

// Element (x, y, c) of image n of t.
Expr at(const ImageParam& t, const GroupView& g, Expr x, Expr y, Expr c, Expr n) { return g.flat ? t(c, n) : t(x, y, c, n); }

// The reduction over one group's elements: (r.x, r.y) the pixel, r.z its channel within the group.
RDom groupDom(const GroupView& g, const std::string& name) { return RDom(0, g.W, 0, g.H, 0, g.Cg, name); }

// Mean (i = 0) or 1 / std (i = 1) of the statistics element (x, y, c) of image n belongs to.
Expr statOf(const ImageParam& st, const GroupView& g, int i, Expr x, Expr y, Expr c, Expr n) {
  return g.channels ? st(i, x, y, n) : st(i, c / g.Cg, n);
}

Dims statsDims(const GroupView& g) { return g.channels ? Dims{g.H, g.W, 2} : Dims{g.G, 2}; }

struct NormFuncs {
  Func out;
  std::vector<Func> sums;  // per (group, image) or per channel: computed once per call on CPUs
  std::vector<Argument> args;
};

NormFuncs statsAlgorithm(const KernelSpec& k) {
  NormFuncs f;
  GroupView g = viewOf(k.in, k.attrs);
  KernelParams p(k);
  ImageParam x = p.tensor("x", k.in);
  f.args = p.args();
  Var i("i"), gr("g"), n("n"), px("x"), py("y");
  Func s1("gn_sum"), s2("gn_sumsq");
  Expr M;
  std::vector<Expr> at2;  // the statistics' own coordinates: (group) or (x, y)
  if (g.channels) {
    RDom r(0, g.C, "gn_r");
    Expr v = cast<double>(x(px, py, r, n));
    s1(px, py, n) = sum(v);
    s2(px, py, n) = sum(v * v);
    M = Expr((double)g.C);
    at2 = {px, py};
  } else {
    RDom r = groupDom(g, "gn_r");
    Expr v = cast<double>(at(x, g, r.x, r.y, gr * g.Cg + r.z, n));
    s1(gr, n) = sum(v);
    s2(gr, n) = sum(v * v);
    M = Expr((double)g.Cg * g.H * g.W);
    at2 = {gr};
  }
  std::vector<Expr> sn = at2;
  sn.push_back(n);
  Expr mean = s1(sn) / M;
  Expr var = max(s2(sn) / M - mean * mean, Expr(0.0));
  f.out = Func("gn_stats");
  std::vector<Var> outArgs{i};
  if (g.channels) outArgs.insert(outArgs.end(), {px, py});
  else outArgs.push_back(gr);
  outArgs.push_back(n);
  f.out(outArgs) = cast<float>(select(i == 0, mean, Expr(1.0) / sqrt(var + Expr(k.attrs.eps))));
  f.sums = {s1, s2};
  return f;
}

void statsCpu(NormFuncs& f, const KernelSpec& k) {
  std::vector<Var> a = f.out.args();
  if (a.size() == 4) {  // per pixel: a row's sums at a time
    for (Func s : f.sums) s.compute_at(f.out, a[2]);
    f.out.unroll(a[0]).parallel(a[3]);
    return;
  }
  for (Func s : f.sums) s.compute_at(f.out, a[1]);
  f.out.unroll(a[0]).fuse(a[1], a[2], a[1]).parallel(a[1]);
}

NormFuncs applyAlgorithm(const KernelSpec& k) {
  NormFuncs f;
  Vars v;
  GroupView g = viewOf(k.in, k.attrs);
  KernelParams p(k);
  ImageParam x = p.tensor("x", k.in), st = p.tensor("stats", statsDims(g));
  ImageParam gamma, beta;
  if (k.attrs.bias) gamma = p.fixed("gamma", {g.C}), beta = p.fixed("beta", {g.C});
  f.args = p.args();
  Expr c = g.flat ? Expr(v.f) : Expr(v.c);
  Expr xhat = (at(x, g, v.x, v.y, c, v.n) - statOf(st, g, 0, v.x, v.y, c, v.n)) * statOf(st, g, 1, v.x, v.y, c, v.n);
  Expr y = k.attrs.bias ? xhat * gamma(c) + beta(c) : xhat;
  f.out = Func("gn_apply");
  if (g.flat) f.out(v.f, v.n) = applyAct(y, k.act);
  else f.out(v.x, v.y, v.c, v.n) = applyAct(y, k.act);
  return f;
}

void elementwiseCpu(NormFuncs& f, const KernelSpec& k) {
  Vars v;
  if (k.in.size() == 3) scheduleSpatial(f.out, k, v);
  else scheduleFlat(f.out, k, v);
}

// dx: the group sums of g = dy * gamma and of g * xhat, then per element.
NormFuncs backDataAlgorithm(const KernelSpec& k) {
  NormFuncs f;
  Vars v;
  GroupView g = viewOf(k.in, k.attrs);
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", k.in), x = p.tensor("x", k.in), st = p.tensor("stats", statsDims(g));
  ImageParam gamma;
  if (k.attrs.bias) gamma = p.fixed("gamma", {g.C});
  f.args = p.args();
  auto gradAt = [&](Expr xx, Expr yy, Expr c, Expr n) {
    Expr d = at(dy, g, xx, yy, c, n);
    return k.attrs.bias ? d * gamma(c) : d;
  };
  auto xhatAt = [&](Expr xx, Expr yy, Expr c, Expr n) {
    return (at(x, g, xx, yy, c, n) - statOf(st, g, 0, xx, yy, c, n)) * statOf(st, g, 1, xx, yy, c, n);
  };
  Var gr("g"), n("n"), px("px"), py("py");
  Func a("gnb_sum_g"), b("gnb_sum_gx");
  float M;
  Expr ce = g.flat ? Expr(v.f) : Expr(v.c), sa, sb;
  if (g.channels) {
    RDom r(0, g.C, "gnb_r");
    a(px, py, n) = cast<float>(sum(cast<double>(gradAt(px, py, r, n))));
    b(px, py, n) = cast<float>(sum(cast<double>(gradAt(px, py, r, n) * xhatAt(px, py, r, n))));
    M = (float)g.C;
    sa = a(v.x, v.y, v.n), sb = b(v.x, v.y, v.n);
  } else {
    RDom r = groupDom(g, "gnb_r");
    Expr c = gr * g.Cg + r.z;
    a(gr, n) = cast<float>(sum(cast<double>(gradAt(r.x, r.y, c, n))));
    b(gr, n) = cast<float>(sum(cast<double>(gradAt(r.x, r.y, c, n) * xhatAt(r.x, r.y, c, n))));
    M = (float)((double)g.Cg * g.H * g.W);
    sa = a(ce / g.Cg, v.n), sb = b(ce / g.Cg, v.n);
  }
  Expr e = statOf(st, g, 1, v.x, v.y, ce, v.n) * (gradAt(v.x, v.y, ce, v.n) - sa / M - xhatAt(v.x, v.y, ce, v.n) * (sb / M));
  f.out = Func("gn_dx");
  if (g.flat) f.out(v.f, v.n) = e;
  else f.out(v.x, v.y, v.c, v.n) = e;
  f.sums = {a, b};
  return f;
}

void backDataCpu(NormFuncs& f, const KernelSpec& k) {
  Vars v;
  for (Func s : f.sums) s.compute_at(f.out, v.n);
  if (k.schedule.vec > 1) f.out.vectorize(k.in.size() == 3 ? v.x : v.f, k.schedule.vec);
  f.out.parallel(v.n);
}

NormFuncs backGammaAlgorithm(const KernelSpec& k) {
  NormFuncs f;
  GroupView g = viewOf(k.in, k.attrs);
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", k.in), x = p.tensor("x", k.in), st = p.tensor("stats", statsDims(g));
  f.args = p.args();
  Var c("c");
  // The batch is the last dimension of every argument: its extent is the call's batch.
  RDom r(0, g.W, 0, g.H, 0, dy.dim(g.flat ? 1 : 3).extent(), "gng_r");
  Expr xhat = (at(x, g, r.x, r.y, c, r.z) - statOf(st, g, 0, r.x, r.y, c, r.z)) * statOf(st, g, 1, r.x, r.y, c, r.z);
  f.out = Func("gn_dgamma");
  f.out(c) = cast<float>(sum(cast<double>(at(dy, g, r.x, r.y, c, r.z) * xhat)));
  return f;
}

void backGammaCpu(NormFuncs& f, const KernelSpec&) { f.out.parallel(f.out.args()[0]); }

}  // namespace

ArgNames gnStatsArgs(const KernelSpec&) { return {"x"}; }
ArgNames gnApplyArgs(const KernelSpec& k) {
  if (k.attrs.bias) return {"x", "stats", "gamma", "beta"};
  return {"x", "stats"};
}
ArgNames gnBackDataArgs(const KernelSpec& k) {
  if (k.attrs.bias) return {"dy", "x", "stats", "gamma"};
  return {"dy", "x", "stats"};
}
ArgNames gnBackGammaArgs(const KernelSpec&) { return {"dy", "x", "stats"}; }

Lowered lowerGNStats(const KernelSpec& k) { return lowerWithSchedules(k, statsAlgorithm(k), statsCpu); }
Lowered lowerGNApply(const KernelSpec& k) { return lowerWithSchedules(k, applyAlgorithm(k), elementwiseCpu); }
Lowered lowerGNBackData(const KernelSpec& k) { return lowerWithSchedules(k, backDataAlgorithm(k), backDataCpu); }
Lowered lowerGNBackGamma(const KernelSpec& k) { return lowerWithSchedules(k, backGammaAlgorithm(k), backGammaCpu); }

// ---- Plan steps (plan_builder.h) ----

namespace {
Dims statsShape(const Node& n) {
  if (n.attrs.normChannels) return {n.shape[1], n.shape[2], 2};
  return {n.attrs.groups, 2};
}
}  // namespace

// Inference: the statistics, then the normalisation absorbing a following activation.
void groupNormPlan(InferenceBuilder& b, const Node& n) {
  KernelSpec ss = b.specOf(n);
  ss.kind = KernelKind::GNStats;
  ss.out = statsShape(n);
  int st = b.newTensor(statsShape(n), n.name + ".stats");
  KernelSpec as = b.specOf(n);
  as.kind = KernelKind::GNApply;
  NamedArgs args{{"x", b.act(n.inputs[0])}, {"stats", KernelArg{false, st}}};  // act() takes a node; st is a tensor
  if (n.attrs.bias) {
    args.push_back({"gamma", {true, b.constParam(b.param(n, ParamRole::Weight))}});
    args.push_back({"beta", {true, b.constParam(b.param(n, ParamRole::Bias))}});
  }
  std::string label = n.name;
  b.emitTo(ss, {{"x", b.act(n.inputs[0])}}, st, n.name + ".stats", n.id);
  int tail = b.absorbAct(n.id, as, label);
  b.emit(as, args, b.g.nodes[tail], label);
}

void groupNormForward(TrainingBuilder& b, const Node& n) {
  int x = b.tensorOf[n.inputs[0]];
  const Dims& in = b.g.nodes[n.inputs[0]].shape;
  Group gr = Group::of(n);
  gr.stats = b.newTensor(statsShape(n), n.name + ".stats");  // an activation: each image its own
  b.call(b.spec(KernelKind::GNStats, in, statsShape(n), n.attrs), {{"x", b.act(x)}}, b.act(gr.stats), n.name + ".stats", n.id);
  std::string label = n.name;
  int y = b.finishGroup(gr, label, true);
  NamedArgs args{{"x", b.act(x)}, {"stats", b.act(gr.stats)}};
  if (n.attrs.bias) {
    args.push_back({"gamma", b.cst(b.paramRef(b.param(n, ParamRole::Weight)))});
    args.push_back({"beta", b.cst(b.paramRef(b.param(n, ParamRole::Bias)))});
  }
  b.call(b.spec(KernelKind::GNApply, in, n.shape, n.attrs, b.groups.back().act), args, b.act(y), label, n.id);
}

void groupNormBackward(TrainingBuilder& b, const BackStep& st) {
  const Node& head = st.head;
  NamedArgs in{{"dy", b.act(st.dPre)}, {"x", b.act(st.x)}, {"stats", b.act(st.gr.stats)}};
  if (head.attrs.bias) {
    int w = b.param(head, ParamRole::Weight), bias = b.param(head, ParamRole::Bias);
    b.call(b.spec(KernelKind::GNBackGamma, st.inShape, {st.inShape[0]}, head.attrs), in, b.cst(b.gradOfParam(w)), st.dl + " (gamma)", st.m);
    b.call(b.spec(KernelKind::BiasGrad, head.shape, {head.shape[0]}), {{"dy", b.act(st.dPre)}}, b.cst(b.gradOfParam(bias)), st.dl + " (beta)", st.m);
    in.push_back({"gamma", b.cst(b.paramRef(w))});
  }
  b.giveInput(st, KernelKind::GNBackData, in, head.attrs);
}

}  // namespace cnnc::codegen
