// pad.cpp: zero padding per side (F.pad(x, (left, right, top, bottom)), the `pad` layer; U-Net
// pads an upsampled map to its skip's size) and its gradient, the crop of the padded gradient.
//
//   Pad   x[C,H,W] -> y[C,H+t+b,W+l+r], y(x + l, y + t) = x(x, y), 0 elsewhere
//   Crop  dy[C,H+t+b,W+l+r] -> dx[C,H,W], dx(x, y) = dy(x + l, y + t)
//
// attrs.pad holds (t, l). The pad is a zero fill and a dense copy of the interior (the form of
// op_helpers.h's zeroPadded, whose measured reason is there: a clamped read scalarises vectors).
#include "gpu.h"
#include "ops.h"
#include "plan_builder.h"

namespace cnnc::codegen {

namespace {

struct PadFuncs {
  Func out;
  std::vector<Argument> args;
};

PadFuncs padAlgorithm(const KernelSpec& k) {
  PadFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam x = p.tensor("input", k.in);
  f.args = p.args();
  int t = (int)k.attrs.pad[0], l = (int)k.attrs.pad[1], H = (int)k.in[1], W = (int)k.in[2];
  f.out = Func("pad_out");
  if (k.schedule.gpu) {
    f.out(v.x, v.y, v.c, v.n) = BoundaryConditions::constant_exterior(x, 0.0f, {{0, W}, {0, H}})(v.x - l, v.y - t, v.c, v.n);
    return f;
  }
  RDom r(0, W, 0, H, "pad_r");
  f.out(v.x, v.y, v.c, v.n) = 0.0f;
  f.out(r.x + l, r.y + t, v.c, v.n) = x(r.x, r.y, v.c, v.n);
  return f;
}

void padCpu(PadFuncs& f, const KernelSpec& k) {
  Vars v;
  const auto& rv = f.out.update().get_schedule().rvars();
  RVar rx(rv[0].var), ry(rv[1].var);
  int vec = k.schedule.vec;
  if (vec > 1) f.out.vectorize(v.x, vec);
  if (vec > 1 && k.in[2] >= vec) f.out.update().vectorize(rx, vec);
  f.out.fuse(v.c, v.n, v.cn).parallel(v.cn);
  f.out.update().reorder(rx, ry, v.c, v.n).fuse(v.c, v.n, v.cn).parallel(v.cn);
}

PadFuncs cropAlgorithm(const KernelSpec& k) {
  PadFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", k.in);
  f.args = p.args();
  f.out = Func("crop_out");
  f.out(v.x, v.y, v.c, v.n) = dy(v.x + (int)k.attrs.pad[1], v.y + (int)k.attrs.pad[0], v.c, v.n);
  return f;
}

void cropCpu(PadFuncs& f, const KernelSpec& k) {
  Vars v;
  scheduleSpatial(f.out, k, v);
}

}  // namespace

ArgNames padArgs(const KernelSpec&) { return {"input"}; }
ArgNames cropArgs(const KernelSpec&) { return {"dy"}; }

Lowered lowerPad(const KernelSpec& k) { return lowerWithSchedules(k, padAlgorithm(k), padCpu); }
Lowered lowerCrop(const KernelSpec& k) { return lowerWithSchedules(k, cropAlgorithm(k), cropCpu); }

// ---- Plan steps (plan_builder.h) ----

void padPlan(InferenceBuilder& b, const Node& n) { b.single(n, KernelKind::Pad); }

void padForward(TrainingBuilder& b, const Node& n) { b.singleForward(n, KernelKind::Pad); }

void padBackward(TrainingBuilder& b, const BackStep& st) { b.giveInput(st, KernelKind::Crop, {{"dy", b.act(st.dPre)}}, st.head.attrs); }

}  // namespace cnnc::codegen
