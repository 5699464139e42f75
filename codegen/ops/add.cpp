// add.cpp: the elementwise sum of tensors (residual adds, `add { ... }` branches, and the sum of a
// tensor's gradient contributions in training), any rank, with an optional fused activation.
// Operands broadcast as NumPy's do on equal ranks (a dimension of 1 repeats): compiler/shape_rules.h.
//
//   Add  a, b -> act(a + b)
//
// Its backward needs no kernel where an operand has the sum's shape (it receives the sum's gradient
// as it is); a broadcast operand receives that gradient summed over the repeated dimensions
// (BroadcastBack, mul.cpp).
#include "gpu.h"
#include "ops.h"
#include "plan_builder.h"
#include "shape_rules.h"

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
  std::vector<Var> idx = elementVars(k.out, v);
  f.out = Func("add_out");
  f.out(idx) = applyAct(a(broadcastIndex(k.in, k.out, idx)) + b(broadcastIndex(k.extraIns[0], k.out, idx)), k.act);
  return f;
}

void addCpu(AddFuncs& f, const KernelSpec& k) {
  Vars v;
  if (k.out.size() == 3) scheduleSpatial(f.out, k, v);
  else scheduleFlat(f.out, k, v);
}

// The shape of the sum of tensors of shapes a and b (the front end checked that it exists).
Dims sumShape(const Dims& a, const Dims& b) {
  Dims out;
  broadcastDims(a, b, out);
  return out;
}

}  // namespace

ArgNames addArgs(const KernelSpec&) { return {"a", "b"}; }

Lowered lowerAdd(const KernelSpec& k) { return lowerWithSchedules(k, addAlgorithm(k), addCpu); }

// ---- Plan steps (plan_builder.h) ----

// A sum of N inputs is a chain of two-input adds; the last absorbs an activation. Backward: each
// input receives the sum's gradient (summed over its broadcast dimensions).
void addPlan(InferenceBuilder& b, const Node& n) {
  std::string label = n.name;
  int acc = n.inputs[0];
  Dims accShape = b.g.nodes[acc].shape;
  for (size_t i = 1; i < n.inputs.size(); ++i) {
    KernelSpec a;
    a.kind = KernelKind::Add;
    a.in = accShape;
    a.extraIns = {b.g.nodes[n.inputs[i]].shape};
    a.out = i + 1 < n.inputs.size() ? sumShape(accShape, a.extraIns[0]) : n.shape;
    NamedArgs named{{"a", b.act(acc)}, {"b", b.act(n.inputs[i])}};
    if (i + 1 < n.inputs.size()) {
      std::vector<KernelArg> args = bindArgs(a, named);
      int t = b.newTensor(a.out, n.name);
      args.push_back({false, t});
      b.p.calls.push_back({internSpec(b.p, a, b.specIndex), args, label, n.id});
      b.tensorOf[n.id] = t;
      acc = n.id;
      accShape = a.out;
    } else {
      int cur = b.absorbAct(n.id, a, label);
      b.emit(a, named, b.g.nodes[cur], label);
    }
  }
}

void addForward(TrainingBuilder& b, const Node& n) {
  std::string label = n.name;
  Group gr = Group::of(n);
  // One operand is a batch norm whose BNApply waited for this add (batchnormForward): one kernel
  // writes act(BN(x) + other), and neither BN's output nor a separate add pass is made. BN's
  // backward reads x, not its output, and the sum rounds as the add kernel's did.
  for (int j : {0, 1}) {
    auto it = n.inputs.size() == 2 ? b.deferredApply.find(n.inputs[j]) : b.deferredApply.end();
    if (it == b.deferredApply.end()) continue;
    TrainingBuilder::DeferredApply d = it->second;
    b.deferredApply.erase(it);
    label = d.label + "+" + label;
    int y = b.finishGroup(gr, label, true);
    d.spec.residual = true;
    d.spec.act = b.groups.back().act;
    d.args.push_back({"residual", b.act(b.tensorOf[n.inputs[1 - j]])});
    b.call(d.spec, d.args, b.act(y), label, n.id);
    return;
  }
  int acc = b.tensorOf[n.inputs[0]];
  Dims accShape = b.g.nodes[n.inputs[0]].shape;
  for (size_t i = 1; i < n.inputs.size(); ++i) {
    bool last = i + 1 == n.inputs.size();
    const Dims& bShape = b.g.nodes[n.inputs[i]].shape;
    Dims outShape = last ? n.shape : sumShape(accShape, bShape);
    KernelSpec s = b.spec(KernelKind::Add, accShape, outShape, n.attrs);
    s.extraIns = {bShape};
    int y;
    if (last) {
      y = b.finishGroup(gr, label, true);
      s.act = b.groups.back().act;
    } else {
      y = b.newTensor(outShape, n.name);
    }
    b.call(s, {{"a", b.act(acc)}, {"b", b.act(b.tensorOf[n.inputs[i]])}}, b.act(y), label, n.id);
    acc = y;
    accShape = outShape;
  }
}

void addBackward(TrainingBuilder& b, const BackStep& st) {
  for (int i : st.head.inputs)
    if (b.needsGrad(i)) b.contrib[i].push_back(broadcastGrad(b, st, i, -1));
}

}  // namespace cnnc::codegen
