// elementwise.cpp: the activation ops (relu, tanh, sigmoid) and residual adds, any rank.
//
//   Activation  x -> act(x)
//   Add         a, b -> act(a + b)
//   ActGrad     dy, y -> dx = dy * act'(x), the derivative read from the saved output y
#include "gpu.h"
#include "ops.h"

namespace cnnc::codegen {

namespace {

struct ElementwiseFuncs {
  Func out;
  std::vector<Argument> args;
};

// The element index of a tensor of per-image shape `d`: (x, y, c, n) or (f, n).
std::vector<Var> indexOf(const Dims& d, Vars& v) {
  return d.size() == 3 ? std::vector<Var>{v.x, v.y, v.c, v.n} : std::vector<Var>{v.f, v.n};
}

ElementwiseFuncs activationOrAdd(const KernelSpec& k) {
  ElementwiseFuncs f;
  Vars v;
  ImageParam a = tensorParam("a", k.in);
  f.args = {a};
  std::vector<Var> idx = indexOf(k.in, v);
  std::vector<Expr> ix(idx.begin(), idx.end());
  Expr val = a(ix);
  if (k.kind == KernelKind::Add) {
    ImageParam b = tensorParam("b", k.extraIns[0]);
    f.args.push_back(b);
    val = val + b(ix);
  }
  f.out = Func(k.kind == KernelKind::Add ? "add_out" : "act_out");
  f.out(idx) = applyAct(val, k.act);
  return f;
}

ElementwiseFuncs actGrad(const KernelSpec& k) {
  ElementwiseFuncs f;
  Vars v;
  ImageParam dy = tensorParam("dy", k.out), y = tensorParam("y", k.out);
  f.args = {dy, y};
  std::vector<Var> idx = indexOf(k.out, v);
  std::vector<Expr> ix(idx.begin(), idx.end());
  f.out = Func("act_dx");
  f.out(idx) = dy(ix) * actDerivFromOutput(y(ix), k.act);
  return f;
}

void elementwiseCpu(ElementwiseFuncs& f, const KernelSpec& k) {
  Vars v;
  if (k.out.size() == 3) scheduleSpatial(f.out, k, v);
  else scheduleFlat(f.out, k, v);
}

}  // namespace

Lowered lowerActivation(const KernelSpec& k) { return lowerWithSchedules(k, activationOrAdd(k), elementwiseCpu); }
Lowered lowerAdd(const KernelSpec& k) { return lowerWithSchedules(k, activationOrAdd(k), elementwiseCpu); }
Lowered lowerActGrad(const KernelSpec& k) { return lowerWithSchedules(k, actGrad(k), elementwiseCpu); }

}  // namespace cnnc::codegen
