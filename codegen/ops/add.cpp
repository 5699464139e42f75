// add.cpp: the elementwise sum of two tensors of one shape, any rank (residual adds, and the sum
// of a tensor's gradient contributions in training), with an optional fused activation.
//
//   Add  a, b -> act(a + b)
//
// Its backward needs no kernel: both operands receive the sum's gradient as it is.
#include "gpu.h"
#include "ops.h"

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

}  // namespace cnnc::codegen
