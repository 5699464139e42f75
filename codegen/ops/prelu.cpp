// prelu.cpp: PyTorch's PReLU, a leaky ReLU whose slope is learned, one for all channels
// (num_parameters=1, the default) or one per channel.
//
//   PRelu            x, weight -> x > 0 ? x : a * x, a = weight[c] or weight[0]
//   PReluBackData    dy, x, weight -> dx = x > 0 ? dy : a * dy
//   PReluBackWeight  dy, x -> dweight = sum of (x > 0 ? 0 : x) * dy over the batch and space
//                    (and channels, for a single slope); not batched
//
// The conditions are PyTorch's: at x = 0 the input gradient is a * dy and the slope's is 0.
#include "gpu.h"
#include "ops.h"
#include "plan_builder.h"

namespace cnnc::codegen {

namespace {

struct PReluFuncs {
  Func out;
  RDom r;
  std::vector<Argument> args;
};

// The slope of channel c: weight has k.attrs.out entries (1 or C).
Expr slope(ImageParam w, const KernelSpec& k, Expr c) { return k.attrs.out == 1 ? w(0) : w(c); }

Expr channelOf(const Dims& d, const Vars& v) { return d.size() == 3 ? Expr(v.c) : Expr(v.f); }

PReluFuncs preluAlgorithm(const KernelSpec& k) {
  PReluFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam x = p.tensor("x", k.in), w = p.fixed("weight", {k.attrs.out});
  f.args = p.args();
  std::vector<Var> idx = elementVars(k.in, v);
  std::vector<Expr> ix(idx.begin(), idx.end());
  f.out = Func("prelu_out");
  f.out(idx) = select(x(ix) > 0.0f, x(ix), slope(w, k, channelOf(k.in, v)) * x(ix));
  return f;
}

PReluFuncs preluBackDataAlgorithm(const KernelSpec& k) {
  PReluFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", k.in), x = p.tensor("x", k.in), w = p.fixed("weight", {k.attrs.out});
  f.args = p.args();
  std::vector<Var> idx = elementVars(k.in, v);
  std::vector<Expr> ix(idx.begin(), idx.end());
  f.out = Func("prelu_dx");
  f.out(idx) = select(x(ix) > 0.0f, dy(ix), slope(w, k, channelOf(k.in, v)) * dy(ix));
  return f;
}

// k.in: x's shape; k.out: weight's ([1] or [C]).
PReluFuncs preluBackWeightAlgorithm(const KernelSpec& k) {
  PReluFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", k.in), x = p.tensor("x", k.in);
  f.args = p.args();
  f.out = Func("prelu_dweight");
  bool one = k.attrs.out == 1;
  auto term = [&](Expr xi, Expr yi, Expr c, Expr n) {
    Expr xv = k.in.size() == 3 ? x(xi, yi, c, n) : x(c, n), dv = k.in.size() == 3 ? dy(xi, yi, c, n) : dy(c, n);
    return select(xv > 0.0f, 0.0f, xv) * dv;
  };
  bool spatial = k.in.size() == 3;
  Region dims;
  if (spatial) dims = {{0, (int)k.in[2]}, {0, (int)k.in[1]}};
  if (one) dims.push_back({0, (int)k.in[0]});
  dims.push_back({0, dy.dim(spatial ? 3 : 1).extent()});
  f.r = RDom(dims, "r");
  int j = 0;
  Expr rx = spatial ? Expr(f.r[j++]) : Expr(0), ry = spatial ? Expr(f.r[j++]) : Expr(0);
  Expr rc = one ? Expr(f.r[j++]) : Expr(v.f);
  Expr rn = f.r[j];
  f.out(v.f) = 0.0f;
  f.out(v.f) += term(rx, ry, rc, rn);
  return f;
}

void preluCpu(PReluFuncs& f, const KernelSpec& k) {
  Vars v;
  if (k.in.size() == 3) scheduleSpatial(f.out, k, v);
  else scheduleFlat(f.out, k, v);
}

void preluBackWeightCpu(PReluFuncs& f, const KernelSpec& k) {
  Vars v;
  if (k.in.size() == 3) laneSum(f.out, f.r, (int)k.in[2]);
  if (k.attrs.out > 1) f.out.update().parallel(v.f);
}

}  // namespace

ArgNames preluArgs(const KernelSpec&) { return {"x", "weight"}; }
ArgNames preluBackDataArgs(const KernelSpec&) { return {"dy", "x", "weight"}; }
ArgNames preluBackWeightArgs(const KernelSpec&) { return {"dy", "x"}; }

Lowered lowerPRelu(const KernelSpec& k) { return lowerWithSchedules(k, preluAlgorithm(k), preluCpu); }
Lowered lowerPReluBackData(const KernelSpec& k) { return lowerWithSchedules(k, preluBackDataAlgorithm(k), preluCpu); }
Lowered lowerPReluBackWeight(const KernelSpec& k) { return lowerWithSchedules(k, preluBackWeightAlgorithm(k), preluBackWeightCpu); }

// ---- Plan steps (plan_builder.h) ----

// One kernel; it absorbs nothing (its gradient reads its input). Backward: the input gradient and
// the slopes' gradient, both from x.
void preluPlan(InferenceBuilder& b, const Node& n) {
  KernelSpec s = b.specOf(n);
  s.kind = KernelKind::PRelu;
  int w = b.constParam(b.param(n, ParamRole::Weight));
  b.emit(s, {{"x", b.act(n.inputs[0])}, {"weight", {true, w}}}, n, n.name);
}

void preluForward(TrainingBuilder& b, const Node& n) {
  std::string label = n.name;
  int y = b.finishGroup(Group::of(n), label, false);
  int w = b.paramRef(b.param(n, ParamRole::Weight));
  b.call(b.spec(KernelKind::PRelu, n.shape, n.shape, n.attrs), {{"x", b.act(b.tensorOf[n.inputs[0]])}, {"weight", b.cst(w)}}, b.act(y), label, n.id);
}

void preluBackward(TrainingBuilder& b, const BackStep& st) {
  int w = b.param(st.head, ParamRole::Weight);
  b.giveInput(st, KernelKind::PReluBackData, {{"dy", b.act(st.dPre)}, {"x", b.act(st.x)}, {"weight", b.cst(b.paramRef(w))}}, st.head.attrs);
  b.call(b.spec(KernelKind::PReluBackWeight, st.head.shape, b.g.params[w].shape, st.head.attrs), {{"dy", b.act(st.dPre)}, {"x", b.act(st.x)}},
         b.cst(b.gradOfParam(w)), st.dl + " (weight)", st.m);
}

}  // namespace cnnc::codegen
