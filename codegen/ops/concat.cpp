// concat.cpp: channel concatenation (the .cnn `concat` of parallel branches) and its gradient.
//
//   Concat  x0[C0,...], x1[C1,...], ... -> y[C0+C1+...,...] = act(the inputs' channels in turn)
//   Slice   dy[Ctot,...] (, y[Ctot,...]) -> dx: channels [attrs.size, attrs.size + out[0]) of dy, one
//           input's share; times act'(y) there when the concat's activation is fused (act set)
#include "gpu.h"
#include "ops.h"
#include "plan_builder.h"

namespace cnnc::codegen {

namespace {

struct ConcatFuncs {
  Func out;
  std::vector<Argument> args;
};

ConcatFuncs concatForward(const KernelSpec& k) {
  ConcatFuncs f;
  Vars v;
  std::vector<Dims> shapes{k.in};
  shapes.insert(shapes.end(), k.extraIns.begin(), k.extraIns.end());
  KernelParams p(k);
  std::vector<ImageParam> ins;
  for (size_t i = 0; i < shapes.size(); ++i) ins.push_back(p.tensor("in" + std::to_string(i), shapes[i]));
  f.args = p.args();
  bool spatial = k.in.size() == 3;
  Var ch = spatial ? v.c : v.f;
  // Walk the inputs backwards so the first matching range wins in the select chain.
  int64_t total = 0;
  std::vector<int64_t> starts;
  for (const auto& s : shapes) { starts.push_back(total); total += s[0]; }
  Expr val = 0.0f;
  for (int i = (int)shapes.size() - 1; i >= 0; --i) {
    Expr local = clamp(ch - (int)starts[i], 0, (int)shapes[i][0] - 1);
    Expr pick = spatial ? ins[i](v.x, v.y, local, v.n) : ins[i](local, v.n);
    val = i == (int)shapes.size() - 1 ? pick : select(ch < (int)(starts[i] + shapes[i][0]), pick, val);
  }
  // An activation after the concat (SqueezeNet's Fire ends with one ReLU over both branches) is
  // applied as the channels are copied, not in a pass of its own over the result.
  val = applyAct(val, k.act);
  f.out = Func("concat_out");
  if (spatial) f.out(v.x, v.y, v.c, v.n) = val;
  else f.out(v.f, v.n) = val;
  return f;
}

void concatCpu(ConcatFuncs& f, const KernelSpec& k) {
  Vars v;
  if (k.in.size() == 3) scheduleSpatial(f.out, k, v);
  else f.out.parallel(v.n);
}

ConcatFuncs sliceBack(const KernelSpec& k) {
  ConcatFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", k.in), y;
  if (!k.act.none()) y = p.tensor("y", k.in);
  f.args = p.args();
  int start = (int)k.attrs.size;
  f.out = Func("slice");
  bool spatial = k.out.size() == 3;
  auto at = [&](ImageParam t) { return spatial ? t(v.x, v.y, v.c + start, v.n) : t(v.f + start, v.n); };
  Expr val = k.act.none() ? at(dy) : at(dy) * actDeriv(at(y), k.act);
  if (spatial) f.out(v.x, v.y, v.c, v.n) = val;
  else f.out(v.f, v.n) = val;
  return f;
}

void sliceCpu(ConcatFuncs& f, const KernelSpec& k) {
  Vars v;
  if (k.out.size() == 3) scheduleSpatial(f.out, k, v);
  else scheduleFlat(f.out, k, v);
}

}  // namespace

// Concat: one input per branch, in0 .. in<N-1>. Slice: the concatenation's gradient.
ArgNames concatArgs(const KernelSpec& k) {
  ArgNames a;
  for (size_t i = 0; i <= k.extraIns.size(); ++i) a.push_back("in" + std::to_string(i));
  return a;
}
ArgNames sliceArgs(const KernelSpec& k) { return k.act.none() ? ArgNames{"dy"} : ArgNames{"dy", "y"}; }

Lowered lowerConcat(const KernelSpec& k) { return lowerWithSchedules(k, concatForward(k), concatCpu); }
Lowered lowerSlice(const KernelSpec& k) { return lowerWithSchedules(k, sliceBack(k), sliceCpu); }

// ---- Plan steps (plan_builder.h) ----

// One kernel over all branches, with the activation that follows it; backward, one Slice of the
// gradient per branch that needs one (after the activation's gradient).
void concatPlan(InferenceBuilder& b, const Node& n) {
  KernelSpec s = b.specOf(n);
  s.kind = KernelKind::Concat;
  NamedArgs args;
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    args.push_back({"in" + std::to_string(i), b.act(n.inputs[i])});
    if (i) s.extraIns.push_back(b.g.nodes[n.inputs[i]].shape);
  }
  std::string label = n.name;
  int tail = b.absorbAct(n.id, s, label);
  b.emit(s, args, b.g.nodes[tail], label);
}

void concatForward(TrainingBuilder& b, const Node& n) {
  std::string label = n.name;
  NamedArgs args;
  for (size_t i = 0; i < n.inputs.size(); ++i) args.push_back({"in" + std::to_string(i), b.act(b.tensorOf[n.inputs[i]])});
  int y = b.finishGroup(Group::of(n), label, true);
  KernelSpec s = b.spec(KernelKind::Concat, b.g.nodes[n.inputs[0]].shape, n.shape, n.attrs, b.groups.back().act);
  for (size_t i = 1; i < n.inputs.size(); ++i) s.extraIns.push_back(b.g.nodes[n.inputs[i]].shape);
  b.call(s, args, b.act(y), label, n.id);
}

void concatBackward(TrainingBuilder& b, const BackStep& st) {
  int64_t start = 0;
  for (int i : st.head.inputs) {
    const Dims& s = b.g.nodes[i].shape;
    if (b.needsGrad(i)) {
      Attrs a;
      a.size = start;
      int dx = b.newTensor(s, "d" + b.g.nodes[i].name);
      NamedArgs args{{"dy", b.act(st.dPre)}};
      if (st.actInOp) args.push_back({"y", b.act(st.gr.out)});
      b.call(b.spec(KernelKind::Slice, st.head.shape, s, a, st.actInOp ? st.gr.act : Act()), args, b.act(dx), st.dl + " (slice)", st.m);
      b.contrib[i].push_back(dx);
    }
    start += s[0];
  }
}

}  // namespace cnnc::codegen
