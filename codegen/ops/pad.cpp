// pad.cpp: zero padding per side (F.pad(x, (left, right, top, bottom)), the `pad` layer; U-Net
// pads an upsampled map to its skip's size) and its gradient, the crop of the padded gradient.
//
//   Pad   x[C,H,W] -> y[C,H+t+b,W+l+r], y(x + l, y + t) = x(x, y), 0 elsewhere
//   Crop  dy[C,H+t+b,W+l+r] -> dx[C,H,W], dx(x, y) = dy(x + l, y + t)
//
// attrs.pad holds (t, l). The pad is op_helpers.h's zeroPadded: a zero fill and a dense copy of the
// interior (its measured reason is there: a clamped read scalarises vectors).
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
  KernelParams p(k);
  ImageParam x = p.tensor("input", k.in);
  f.args = p.args();
  // op_helpers.h's zeroPadded: the copy form on CPUs, the pure form on GPUs.
  f.out = zeroPadded(x, (int)k.in[2], (int)k.in[1], (int)k.attrs.pad[1], (int)k.attrs.pad[0], k.schedule, "pad_out");
  return f;
}

void padCpu(PadFuncs& f, const KernelSpec& k) {
  schedulePadded(f.out, (int)k.in[2], k.schedule);
  Var n = f.out.args()[3];
  f.out.parallel(n);
  f.out.update().parallel(n);
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
