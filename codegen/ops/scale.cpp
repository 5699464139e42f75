// scale.cpp: a learned factor per channel (ConvNeXt's layer scale, `layer_scale: scale(1e-6)`).
//
//   Scale           x, gamma -> act(x * gamma[c]); with x = dy it is also the input gradient
//   ScaleBackParam  dy, x -> dgamma[c] = sum over the batch and space of dy * x (not batched)
//
// gamma is [C,1,1] for images, as torchvision stores layer_scale, and [C] for flat tensors.
#include "gpu.h"
#include "ops.h"
#include "plan_builder.h"

namespace cnnc::codegen {

namespace {

struct ScaleFuncs {
  Func out;
  RDom r;
  std::vector<Argument> args;
};

Dims gammaShape(const Dims& x) { return x.size() == 3 ? Dims{x[0], 1, 1} : Dims{x[0]}; }

// gamma at channel `c`.
Expr gammaAt(ImageParam g, const Dims& x, Expr c) { return x.size() == 3 ? g(0, 0, c) : g(c); }

ScaleFuncs scaleAlgorithm(const KernelSpec& k) {
  ScaleFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam x = p.tensor("x", k.in), g = p.fixed("gamma", gammaShape(k.in));
  f.args = p.args();
  std::vector<Var> idx = elementVars(k.in, v);
  std::vector<Expr> ix(idx.begin(), idx.end());
  f.out = Func("scale_out");
  f.out(idx) = applyAct(x(ix) * gammaAt(g, k.in, k.in.size() == 3 ? Expr(v.c) : Expr(v.f)), k.act);
  return f;
}

// k.in: x's shape; k.out: gamma's.
ScaleFuncs scaleBackParamAlgorithm(const KernelSpec& k) {
  ScaleFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", k.in), x = p.tensor("x", k.in);
  f.args = p.args();
  f.out = Func("scale_dgamma");
  if (k.in.size() == 3) {
    f.r = RDom(0, (int)k.in[2], 0, (int)k.in[1], 0, dy.dim(3).extent(), "r");
    f.out(v.x, v.y, v.c) = 0.0f;
    f.out(v.x, v.y, v.c) += dy(f.r.x, f.r.y, v.c, f.r.z) * x(f.r.x, f.r.y, v.c, f.r.z);
  } else {
    RDom r(0, dy.dim(1).extent(), "r");
    f.out(v.f) = sum(dy(v.f, r) * x(v.f, r));
  }
  return f;
}

void scaleCpu(ScaleFuncs& f, const KernelSpec& k) {
  Vars v;
  if (k.in.size() == 3) scheduleSpatial(f.out, k, v);
  else scheduleFlat(f.out, k, v);
}

void scaleBackParamCpu(ScaleFuncs& f, const KernelSpec& k) {
  Vars v;
  if (k.in.size() == 3) {
    laneSum(f.out, f.r, (int)k.in[2]);
    f.out.parallel(v.c);
    f.out.update().parallel(v.c);
  } else {
    f.out.parallel(v.f);
  }
}

}  // namespace

ArgNames scaleArgs(const KernelSpec&) { return {"x", "gamma"}; }
ArgNames scaleBackParamArgs(const KernelSpec&) { return {"dy", "x"}; }

Lowered lowerScale(const KernelSpec& k) { return lowerWithSchedules(k, scaleAlgorithm(k), scaleCpu); }
Lowered lowerScaleBackParam(const KernelSpec& k) { return lowerWithSchedules(k, scaleBackParamAlgorithm(k), scaleBackParamCpu); }

// ---- Plan steps (plan_builder.h) ----

// One kernel, absorbing a following activation. Backward: dx = dy * gamma (the Scale kernel on
// dy), dgamma = sum of dy * x.
void scalePlan(InferenceBuilder& b, const Node& n) {
  KernelSpec s = b.specOf(n);
  s.kind = KernelKind::Scale;
  std::string label = n.name;
  int tail = b.absorbAct(n.id, s, label);
  int gamma = b.constParam(b.param(n, ParamRole::Weight));
  b.emit(s, {{"x", b.act(n.inputs[0])}, {"gamma", {true, gamma}}}, b.g.nodes[tail], label);
}

void scaleForward(TrainingBuilder& b, const Node& n) {
  std::string label = n.name;
  int y = b.finishGroup(Group::of(n), label, true);
  int gamma = b.paramRef(b.param(n, ParamRole::Weight));
  b.call(b.spec(KernelKind::Scale, n.shape, n.shape, n.attrs, b.groups.back().act), {{"x", b.act(b.tensorOf[n.inputs[0]])}, {"gamma", b.cst(gamma)}},
         b.act(y), label, n.id);
}

void scaleBackward(TrainingBuilder& b, const BackStep& st) {
  int w = b.param(st.head, ParamRole::Weight);
  b.giveInput(st, KernelKind::Scale, {{"x", b.act(st.dPre)}, {"gamma", b.cst(b.paramRef(w))}}, st.head.attrs);
  b.call(b.spec(KernelKind::ScaleBackParam, st.head.shape, b.g.params[w].shape), {{"dy", b.act(st.dPre)}, {"x", b.act(st.x)}},
         b.cst(b.gradOfParam(w)), st.dl + " (gamma)", st.m);
}

}  // namespace cnnc::codegen
