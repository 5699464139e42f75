// mul.cpp: the elementwise product of two branches, `mul { a; b }`, with broadcasting (a [C,1,1]
// gate scales a [C,H,W] tensor: squeeze-and-excitation), and the gradient of a broadcast operand,
// which add.cpp uses too.
//
//   Mul            a, b -> act(a * b), each indexed through broadcastIndex (op_helpers.h)
//   BroadcastBack  dy[out], [other] -> d[operand] = sum over the operand's broadcast dimensions of
//                  dy * other (mul) or dy (add)
#include "gpu.h"
#include "ops.h"
#include "plan_builder.h"

namespace cnnc::codegen {

namespace {

struct MulFuncs {
  Func out;
  RDom r;  // BroadcastBack: the broadcast dimensions it sums over (undefined: none)
  std::vector<Argument> args;
};

MulFuncs mulAlgorithm(const KernelSpec& k) {
  MulFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam a = p.tensor("a", k.in), b = p.tensor("b", k.extraIns[0]);
  f.args = p.args();
  std::vector<Var> idx = elementVars(k.out, v);
  f.out = Func("mul_out");
  f.out(idx) = applyAct(a(broadcastIndex(k.in, k.out, idx)) * b(broadcastIndex(k.extraIns[0], k.out, idx)), k.act);
  return f;
}

// k.in: the op's output shape (dy's); k.out: the operand's; extraIns: the other operand's, if any.
MulFuncs broadcastBackAlgorithm(const KernelSpec& k) {
  MulFuncs f;
  Vars v;
  KernelParams p(k);
  bool times = !k.extraIns.empty();
  ImageParam dy = p.tensor("dy", k.in);
  ImageParam other = times ? p.tensor("other", k.extraIns[0]) : ImageParam();
  f.args = p.args();
  std::vector<Var> idx = elementVars(k.out, v);
  // Halide's order: innermost (x, or f) first; reduced where the operand has 1 and dy more.
  int rank = (int)k.out.size();
  std::vector<int> reduced;
  Region extents;
  for (int i = 0; i < rank; ++i) {
    int64_t dOp = k.out[rank - 1 - i], dOut = k.in[rank - 1 - i];
    if (dOp == 1 && dOut != 1) reduced.push_back(i), extents.push_back({0, (int)dOut});
  }
  std::vector<Expr> at(idx.begin(), idx.end());
  if (!reduced.empty()) {
    f.r = RDom(extents, "r");
    for (size_t j = 0; j < reduced.size(); ++j) at[reduced[j]] = f.r[(int)j];
  }
  Expr term = dy(at);
  if (times) term = term * other(broadcastIndex(k.extraIns[0], k.in, at));  // at, with other's broadcast dimensions at 0
  f.out = Func("broadcast_dx");
  if (reduced.empty()) {
    f.out(idx) = term;
  } else {
    f.out(idx) = 0.0f;
    f.out(idx) += term;
  }
  return f;
}

void mulCpu(MulFuncs& f, const KernelSpec& k) {
  Vars v;
  if (k.out.size() == 3) scheduleSpatial(f.out, k, v);
  else scheduleFlat(f.out, k, v);
}

// Sums over x run in vector lanes (laneSum) when x is the first broadcast dimension; the rest are
// plain loops. Tasks: (channel, image) pairs, or images.
void broadcastBackCpu(MulFuncs& f, const KernelSpec& k) {
  Vars v;
  if (!f.r.defined()) return mulCpu(f, k);
  bool spatial = k.out.size() == 3;
  if (spatial && k.out[2] == 1 && k.in[2] != 1) laneSum(f.out, f.r, (int)k.in[2]);
  if (spatial) {
    f.out.fuse(v.c, v.n, v.cn).parallel(v.cn);
    f.out.update().fuse(v.c, v.n, v.cn).parallel(v.cn);
  } else {
    f.out.parallel(v.n);
    f.out.update().parallel(v.n);
  }
}

}  // namespace

ArgNames mulArgs(const KernelSpec&) { return {"a", "b"}; }
ArgNames broadcastBackArgs(const KernelSpec& k) { return k.extraIns.empty() ? ArgNames{"dy"} : ArgNames{"dy", "other"}; }

Lowered lowerMul(const KernelSpec& k) { return lowerWithSchedules(k, mulAlgorithm(k), mulCpu); }
Lowered lowerBroadcastBack(const KernelSpec& k) { return lowerWithSchedules(k, broadcastBackAlgorithm(k), broadcastBackCpu); }

// ---- Plan steps (plan_builder.h) ----

// One kernel for both operands, absorbing a following activation. Backward: each operand gets dy
// times the other, summed over its broadcast dimensions.
void mulPlan(InferenceBuilder& b, const Node& n) {
  KernelSpec s;
  s.kind = KernelKind::Mul;
  s.in = b.g.nodes[n.inputs[0]].shape;
  s.extraIns = {b.g.nodes[n.inputs[1]].shape};
  s.out = n.shape;
  std::string label = n.name;
  int tail = b.absorbAct(n.id, s, label);
  b.emit(s, {{"a", b.act(n.inputs[0])}, {"b", b.act(n.inputs[1])}}, b.g.nodes[tail], label);
}

void mulForward(TrainingBuilder& b, const Node& n) {
  std::string label = n.name;
  int y = b.finishGroup(Group::of(n), label, true);
  KernelSpec s = b.spec(KernelKind::Mul, b.g.nodes[n.inputs[0]].shape, n.shape, n.attrs, b.groups.back().act);
  s.extraIns = {b.g.nodes[n.inputs[1]].shape};
  b.call(s, {{"a", b.act(b.tensorOf[n.inputs[0]])}, {"b", b.act(b.tensorOf[n.inputs[1]])}}, b.act(y), label, n.id);
}

void mulBackward(TrainingBuilder& b, const BackStep& st) {
  for (int i = 0; i < 2; ++i) {
    int operand = st.head.inputs[i], other = st.head.inputs[1 - i];
    if (b.needsGrad(operand)) b.contrib[operand].push_back(broadcastGrad(b, st, operand, b.tensorOf[other]));
  }
}

int broadcastGrad(TrainingBuilder& b, const BackStep& st, int operand, int other) {
  const Dims& d = b.g.nodes[operand].shape;
  if (other < 0 && d == st.head.shape) return st.dPre;
  int t = b.newTensor(d, "d" + b.g.nodes[operand].name);
  KernelSpec s = b.spec(KernelKind::BroadcastBack, st.head.shape, d);
  NamedArgs args{{"dy", b.act(st.dPre)}};
  if (other >= 0) {
    s.extraIns = {b.p.acts[other].shape};
    args.push_back({"other", b.act(other)});
  }
  b.call(s, args, b.act(t), st.dl + " (" + b.g.nodes[operand].name + ")", st.m);
  return t;
}

}  // namespace cnnc::codegen
