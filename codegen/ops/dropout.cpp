// dropout.cpp: dropout in training (nn.Dropout; dropout2d: nn.Dropout2d, whole channels; droppath:
// torchvision's StochasticDepth "row", whole images); inference plans leave it out.
//
//   DropoutFwd   x, seed(i32[2]) -> y = x * mask / (1 - p)
//   DropoutBack  dy, seed -> dx = dy * mask / (1 - p)
//
// The mask is drawn per element, per (image, channel) or per image (attrs.dropUnit).
#include "gpu.h"
#include "ops.h"
#include "plan_builder.h"

namespace cnnc::codegen {

namespace {

// The mask from a counter-based hash of (seed, element index): the same mask in forward and
// backward, and the same for a resumed run, with no mask stored.
Expr keepMask(Expr idx, const ImageParam& seed, float p) {
  auto u32 = [](uint32_t v) { return Halide::Internal::UIntImm::make(UInt(32), v); };
  Expr h = (cast<uint32_t>(idx) * u32(0x9E3779B1u)) ^ cast<uint32_t>(seed(0)) ^ (cast<uint32_t>(seed(1)) * u32(0x85EBCA6Bu));
  h = (h ^ (h >> 16)) * u32(0x7FEB352Du);
  h = (h ^ (h >> 15)) * u32(0x846CA68Bu);
  h = h ^ (h >> 16);
  Expr u = cast<float>(h >> 8) * (1.0f / 16777216.0f);
  return select(u >= p, 1.0f / (1.0f - p), 0.0f);
}

struct DropoutFuncs {
  Func out;
  std::vector<Argument> args;
};

// Forward and backward are the same product with the same mask.
DropoutFuncs dropoutAlgorithm(const KernelSpec& k) {
  DropoutFuncs f;
  Vars v;
  const Dims& d = k.out;
  bool fwd = k.kind == KernelKind::DropoutFwd;
  KernelParams kp(k);
  ImageParam in = kp.tensor(fwd ? "x" : "dy", d);
  ImageParam seed = kp.fixed("seed", {2}, Int(32));
  f.args = kp.args();
  float p = (float)k.attrs.p;
  f.out = Func(fwd ? "dropout" : "dropout_dx");
  using U = Attrs::DropUnit;
  U unit = k.attrs.dropUnit;
  if (d.size() == 3) {
    Expr idx = unit == U::Sample ? Expr(v.n) : unit == U::Channel ? v.n * (int)d[0] + v.c : ((v.n * (int)d[0] + v.c) * (int)d[1] + v.y) * (int)d[2] + v.x;
    f.out(v.x, v.y, v.c, v.n) = p >= 1.0f ? Expr(0.0f) : in(v.x, v.y, v.c, v.n) * keepMask(idx, seed, p);
  } else {
    Expr idx = unit == U::Sample ? Expr(v.n) : v.n * (int)d[0] + v.f;
    f.out(v.f, v.n) = p >= 1.0f ? Expr(0.0f) : in(v.f, v.n) * keepMask(idx, seed, p);
  }
  return f;
}

void dropoutCpu(DropoutFuncs& f, const KernelSpec& k) {
  Vars v;
  if (k.out.size() == 3) scheduleSpatial(f.out, k, v);
  else scheduleFlat(f.out, k, v);
}

}  // namespace

ArgNames dropoutArgs(const KernelSpec& k) { return {k.kind == KernelKind::DropoutFwd ? "x" : "dy", "seed"}; }

Lowered lowerDropout(const KernelSpec& k) { return lowerWithSchedules(k, dropoutAlgorithm(k), dropoutCpu); }

// ---- Plan steps (plan_builder.h) ----

// Inference: the identity, a view of its input. Training: p = 0 is a view too; otherwise one
// kernel whose mask comes from a seed the runtime draws per step, and the same mask backward.
void dropoutPlan(InferenceBuilder& b, const Node& n) { b.view(n); }

void dropoutForward(TrainingBuilder& b, const Node& n) {
  int x = b.tensorOf[n.inputs[0]];
  if (n.attrs.p == 0) {
    b.tensorOf[n.id] = b.newTensor(n.shape, n.name, b.p.acts[x].storage);
    b.isAlias[n.id] = true;
    return;
  }
  ConstTensor sd;
  sd.kind = ConstTensor::Seed;
  sd.shape = {2};
  Group gr = Group::of(n);
  gr.seed = b.newConst(sd);
  b.tp.seeds.push_back(gr.seed);
  std::string label = n.name;
  int y = b.finishGroup(gr, label, false);
  b.call(b.spec(KernelKind::DropoutFwd, n.shape, n.shape, n.attrs), {{"x", b.act(x)}, {"seed", b.cst(b.groups.back().seed)}}, b.act(y), label, n.id);
}

void dropoutBackward(TrainingBuilder& b, const BackStep& st) {
  b.giveInput(st, KernelKind::DropoutBack, {{"dy", b.act(st.dPre)}, {"seed", b.cst(st.gr.seed)}}, st.head.attrs);
}

}  // namespace cnnc::codegen
