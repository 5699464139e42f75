// softmax.cpp: softmax over channels (or features).
//
//   Softmax      x[K] or x[C,H,W] -> y = exp(x - max) / sum exp(x - max)
//   SoftmaxBack  dy, y -> dx = y * (dy - sum of dy * y)
#include "gpu.h"
#include "ops.h"
#include "plan_builder.h"

namespace cnnc::codegen {

namespace {

struct SoftmaxFuncs {
  Func out;
  std::vector<Func> perImage;  // computed per image on CPUs
  std::vector<Argument> args;
};

SoftmaxFuncs softmaxForward(const KernelSpec& k) {
  SoftmaxFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam in = p.tensor("input", k.in);
  f.args = p.args();
  Func out("softmax_out"), mx("softmax_max"), e("softmax_exp"), s("softmax_sum");
  RDom r(0, (int)k.in[0], "r");
  if (k.in.size() == 1) {
    mx(v.n) = maximum(in(r, v.n));
    e(v.f, v.n) = exp(in(v.f, v.n) - mx(v.n));
    s(v.n) = sum(e(r, v.n));
    out(v.f, v.n) = e(v.f, v.n) / s(v.n);
  } else {
    mx(v.x, v.y, v.n) = maximum(in(v.x, v.y, r, v.n));
    e(v.x, v.y, v.c, v.n) = exp(in(v.x, v.y, v.c, v.n) - mx(v.x, v.y, v.n));
    s(v.x, v.y, v.n) = sum(e(v.x, v.y, r, v.n));
    out(v.x, v.y, v.c, v.n) = e(v.x, v.y, v.c, v.n) / s(v.x, v.y, v.n);
  }
  f.out = out;
  f.perImage = {mx, e, s};
  return f;
}

SoftmaxFuncs softmaxBack(const KernelSpec& k) {
  SoftmaxFuncs f;
  Vars v;
  const Dims& d = k.out;
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", d), y = p.tensor("y", d);
  f.args = p.args();
  RDom r(0, (int)d[0], "r");
  Func dot("softmax_dot"), out("softmax_dx");
  if (d.size() == 1) {
    dot(v.n) = sum(dy(r, v.n) * y(r, v.n));
    out(v.f, v.n) = y(v.f, v.n) * (dy(v.f, v.n) - dot(v.n));
  } else {
    dot(v.x, v.y, v.n) = sum(dy(v.x, v.y, r, v.n) * y(v.x, v.y, r, v.n));
    out(v.x, v.y, v.c, v.n) = y(v.x, v.y, v.c, v.n) * (dy(v.x, v.y, v.c, v.n) - dot(v.x, v.y, v.n));
  }
  f.out = out;
  f.perImage = {dot};
  return f;
}

// One task per image; its maximum, exponentials and sums are computed within it.
void softmaxCpu(SoftmaxFuncs& f, const KernelSpec& k) {
  Vars v;
  f.out.parallel(v.n);
  for (Func g : f.perImage) g.compute_at(f.out, v.n);
}

}  // namespace

ArgNames softmaxArgs(const KernelSpec&) { return {"input"}; }
ArgNames softmaxBackArgs(const KernelSpec&) { return {"dy", "y"}; }

Lowered lowerSoftmax(const KernelSpec& k) { return lowerWithSchedules(k, softmaxForward(k), softmaxCpu); }
Lowered lowerSoftmaxBack(const KernelSpec& k) { return lowerWithSchedules(k, softmaxBack(k), softmaxCpu); }

// ---- Plan steps (plan_builder.h) ----

// One kernel each way; the backward kernel reads the saved output y.
void softmaxPlan(InferenceBuilder& b, const Node& n) { b.single(n, KernelKind::Softmax); }
void softmaxForward(TrainingBuilder& b, const Node& n) { b.singleForward(n, KernelKind::Softmax); }

void softmaxBackward(TrainingBuilder& b, const BackStep& st) {
  b.giveInput(st, KernelKind::SoftmaxBack, {{"dy", b.act(st.dPre)}, {"y", b.act(st.gr.out)}}, st.head.attrs);
}

}  // namespace cnnc::codegen
