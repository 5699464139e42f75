// add.cpp: the elementwise sum of two tensors of one shape, any rank (residual adds, and the sum
// of a tensor's gradient contributions in training), with an optional fused activation.
//
//   Add  a, b -> act(a + b)
//
// Its backward needs no kernel: both operands receive the sum's gradient as it is.
#include "gpu.h"
#include "ops.h"
#include "plan_builder.h"

namespace cnnc::codegen {

namespace {

struct AddFuncs {
  Func out;
  std::vector<Argument> args;
};

AddFuncs addAlgorithm(const KernelSpec& k) {
  AddFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam a = p.tensor("a", k.in), b = p.tensor("b", k.extraIns[0]);
  f.args = p.args();
  std::vector<Var> idx = k.in.size() == 3 ? std::vector<Var>{v.x, v.y, v.c, v.n} : std::vector<Var>{v.f, v.n};
  std::vector<Expr> ix(idx.begin(), idx.end());
  f.out = Func("add_out");
  f.out(idx) = applyAct(a(ix) + b(ix), k.act);
  return f;
}

void addCpu(AddFuncs& f, const KernelSpec& k) {
  Vars v;
  if (k.out.size() == 3) scheduleSpatial(f.out, k, v);
  else scheduleFlat(f.out, k, v);
}

}  // namespace

ArgNames addArgs(const KernelSpec&) { return {"a", "b"}; }

Lowered lowerAdd(const KernelSpec& k) { return lowerWithSchedules(k, addAlgorithm(k), addCpu); }

// ---- Plan steps (plan_builder.h) ----

// A sum of N inputs is a chain of two-input adds; the last absorbs an activation. Backward: each
// input receives the sum's gradient.
void addPlan(InferenceBuilder& b, const Node& n) {
  std::string label = n.name;
  int acc = n.inputs[0];
  for (size_t i = 1; i < n.inputs.size(); ++i) {
    KernelSpec a;
    a.kind = KernelKind::Add;
    a.in = n.shape;
    a.extraIns = {n.shape};
    a.out = n.shape;
    NamedArgs named{{"a", b.act(acc)}, {"b", b.act(n.inputs[i])}};
    if (i + 1 < n.inputs.size()) {
      std::vector<KernelArg> args = bindArgs(a, named);
      int t = b.newTensor(n.shape, n.name);
      args.push_back({false, t});
      b.p.calls.push_back({internSpec(b.p, a, b.specIndex), args, label, n.id});
      b.tensorOf[n.id] = t;
      acc = n.id;
    } else {
      int cur = b.absorbAct(n.id, a, label);
      b.emit(a, named, b.g.nodes[cur], label);
    }
  }
}

void addForward(TrainingBuilder& b, const Node& n) {
  std::string label = n.name;
  Group gr = Group::of(n);
  int acc = b.tensorOf[n.inputs[0]];
  for (size_t i = 1; i < n.inputs.size(); ++i) {
    bool last = i + 1 == n.inputs.size();
    KernelSpec s = b.spec(KernelKind::Add, n.shape, n.shape, n.attrs);
    s.extraIns = {n.shape};
    int y;
    if (last) {
      y = b.finishGroup(gr, label, true);
      s.act = b.groups.back().act;
    } else {
      y = b.newTensor(n.shape, n.name);
    }
    b.call(s, {{"a", b.act(acc)}, {"b", b.act(b.tensorOf[n.inputs[i]])}}, b.act(y), label, n.id);
    acc = y;
  }
}

void addBackward(TrainingBuilder& b, const BackStep& st) {
  for (int i : st.head.inputs)
    if (b.needsGrad(i)) b.contrib[i].push_back(st.dPre);
}

}  // namespace cnnc::codegen
