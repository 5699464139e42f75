// lrn.cpp: local response normalisation (nn.LocalResponseNorm): b_c = a_c * s_c^-beta with
// s_c = k + alpha/n * sum of a^2 over the channel window [c - n/2, c + (n-1)/2] (zero outside).
//
//   LRN      x[C,H,W] -> y
//   LrnBack  dy, x -> dx (x: the lrn's input; the window sums are recomputed)
#include "gpu.h"
#include "ops.h"
#include "plan_builder.h"

namespace cnnc::codegen {

namespace {

struct LrnFuncs {
  Func out, s, p, t;  // LrnBack: s, s^-beta and the summand t, per row of a channel block
  std::vector<Argument> args;
};

LrnFuncs lrnForward(const KernelSpec& k) {
  LrnFuncs f;
  Vars v;
  const Attrs& a = k.attrs;
  int64_t C = k.in[0];
  KernelParams p(k);
  ImageParam in = p.tensor("input", k.in);
  f.args = p.args();
  RDom r(0, (int)a.size, "r");
  Expr cc = v.c - (int)(a.size / 2) + r;
  Expr val = in(v.x, v.y, clamp(cc, 0, (int)C - 1), v.n);
  Func sq("lrn_sq");
  sq(v.x, v.y, v.c, v.n) = sum(select(cc >= 0 && cc < (int)C, val * val, 0.0f));
  f.out = Func("lrn_out");
  Expr div = pow((float)a.k + (float)(a.alpha / a.size) * sq(v.x, v.y, v.c, v.n), (float)a.beta);
  f.out(v.x, v.y, v.c, v.n) = in(v.x, v.y, v.c, v.n) / div;
  return f;
}

void lrnCpu(LrnFuncs& f, const KernelSpec& k) {
  Vars v;
  scheduleSpatial(f.out, k, v);
}

// The input gradient, as a gather over the channels whose windows hold channel c, [c - (n-1)/2, c + n/2]:
//   dx_c = dy_c * s_c^-beta - 2 alpha beta / n * a_c * sum_{c'} dy_c' * a_c' * s_c'^(-beta-1).
// s, s^-beta and the summand t are computed per row for a block of channels plus its halo, so each
// pow runs about once per element instead of n times.
LrnFuncs lrnBack(const KernelSpec& k) {
  LrnFuncs f;
  Vars v;
  const Attrs& a = k.attrs;
  const Dims& d = k.out;  // [C,H,W]
  int C = (int)d[0], n = (int)a.size;
  KernelParams kp(k);
  ImageParam dy = kp.tensor("dy", d), x = kp.tensor("x", d);
  f.args = kp.args();
  RDom r(0, n, "r");
  Expr cc = v.c - n / 2 + r;
  Expr xc = x(v.x, v.y, clamp(cc, 0, C - 1), v.n);
  f.s = Func("lrn_s");
  f.p = Func("lrn_p");
  f.t = Func("lrn_t");
  f.out = Func("lrn_dx");
  Func s = f.s, p = f.p, t = f.t;
  s(v.x, v.y, v.c, v.n) = (float)a.k + (float)(a.alpha / n) * sum(select(cc >= 0 && cc < C, xc * xc, 0.0f));
  p(v.x, v.y, v.c, v.n) = pow(s(v.x, v.y, v.c, v.n), -(float)a.beta);
  t(v.x, v.y, v.c, v.n) = dy(v.x, v.y, v.c, v.n) * x(v.x, v.y, v.c, v.n) * p(v.x, v.y, v.c, v.n) / s(v.x, v.y, v.c, v.n);
  RDom q(0, n, "q");
  Expr co = v.c - (n - 1) / 2 + q;
  Expr back = sum(select(co >= 0 && co < C, t(v.x, v.y, clamp(co, 0, C - 1), v.n), 0.0f));
  f.out(v.x, v.y, v.c, v.n) = dy(v.x, v.y, v.c, v.n) * p(v.x, v.y, v.c, v.n) - (float)(2.0 * a.alpha * a.beta / n) * x(v.x, v.y, v.c, v.n) * back;
  return f;
}

// Parallel over (channel block, image) like scheduleSpatial's (channel, image), vectorised along x.
void lrnBackCpu(LrnFuncs& f, const KernelSpec& k) {
  Vars v;
  int C = (int)k.out[0];
  Var cb("cb"), ci("ci"), cbn("cbn");
  int blk = std::min(C, 16);
  f.out.split(v.c, cb, ci, blk, TailStrategy::GuardWithIf).reorder(v.x, ci, v.y, cb, v.n).fuse(cb, v.n, cbn).parallel(cbn);
  int vec = k.schedule.vec;
  if (vec > 1) f.out.vectorize(v.x, vec);
  for (Func g : {f.s, f.p, f.t}) {
    g.compute_at(f.out, v.y);
    if (vec > 1) g.vectorize(v.x, vec);
  }
}

}  // namespace

ArgNames lrnArgs(const KernelSpec&) { return {"input"}; }
ArgNames lrnBackArgs(const KernelSpec&) { return {"dy", "x"}; }  // x: the lrn's input

Lowered lowerLrn(const KernelSpec& k) { return lowerWithSchedules(k, lrnForward(k), lrnCpu); }

Lowered lowerLrnBack(const KernelSpec& k) { return lowerWithSchedules(k, lrnBack(k), lrnBackCpu); }

// ---- Plan steps (plan_builder.h) ----

// One kernel each way; the backward kernel reads the lrn's input x.
void lrnPlan(InferenceBuilder& b, const Node& n) { b.single(n, KernelKind::LRN); }
void lrnForward(TrainingBuilder& b, const Node& n) { b.singleForward(n, KernelKind::LRN); }

void lrnBackward(TrainingBuilder& b, const BackStep& st) {
  b.giveInput(st, KernelKind::LrnBack, {{"dy", b.act(st.dPre)}, {"x", b.act(st.x)}}, st.head.attrs);
}

}  // namespace cnnc::codegen
