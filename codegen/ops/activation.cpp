// activation.cpp: the elementwise activations, one row each, and their two kernels.
//
//   Activation  x -> act(x)
//   ActGrad     dy, v -> dx = dy * act'(x), with v = y (the saved output) where the row's
//               derivative is written from y, else v = x (the activation's input)
//
// The same rows give the epilogues of the kernels an activation fuses into (conv, linear, add,
// batch norm: applyAct) and the inline derivative of batch norm's backward kernels (actDeriv). A
// row's name is its layer's name in compiler/layers.cpp, whose table binds its arguments.
#include "activation.h"

#include <stdexcept>

#include "gpu.h"
#include "ops.h"
#include "plan_builder.h"

namespace cnnc::codegen {

namespace {

struct ActivationRow {
  const char* name;
  Expr (*forward)(Expr x, const Act& a);
  // The derivative, from y = forward(x) when readsOutput(a), else from x.
  Expr (*deriv)(Expr v, const Act& a);
  bool (*readsOutput)(const Act& a);
};

bool always(const Act&) { return true; }
bool never(const Act&) { return false; }
Expr f32(double v) { return Expr((float)v); }

const ActivationRow kRows[] = {
    {"relu", [](Expr x, const Act&) { return max(x, 0.0f); },
     [](Expr y, const Act&) { return select(y > 0.0f, 1.0f, 0.0f); }, always},
    {"tanh", [](Expr x, const Act&) { return vectorTanh(x); }, [](Expr y, const Act&) { return 1.0f - y * y; }, always},
    {"sigmoid", [](Expr x, const Act&) { return 1.0f / (1.0f + exp(-x)); }, [](Expr y, const Act&) { return y * (1.0f - y); }, always},
    // PyTorch's leaky_relu(x, slope): x > 0 ? x : slope * x, with derivative x > 0 ? 1 : slope (so
    // slope at 0). For slope >= 0, y > 0 exactly when x > 0, and the same test on y gives the
    // derivative; a negative slope makes y > 0 for x < 0, so then it reads x.
    {"leakyrelu", [](Expr x, const Act& a) { return select(x > 0.0f, x, x * (float)a.arg(0)); },
     [](Expr v, const Act& a) { return select(v > 0.0f, 1.0f, (float)a.arg(0)); }, [](const Act& a) { return a.arg(0) >= 0; }},
    // Clamps. PyTorch passes the gradient where min < x < max (strictly), which is min < y < max.
    {"relu6", [](Expr x, const Act&) { return clamp(x, 0.0f, 6.0f); },
     [](Expr y, const Act&) { return select(y > 0.0f && y < 6.0f, 1.0f, 0.0f); }, always},
    {"hardtanh", [](Expr x, const Act& a) { return clamp(x, f32(a.arg(0)), f32(a.arg(1))); },
     [](Expr y, const Act& a) { return select(y > f32(a.arg(0)) && y < f32(a.arg(1)), 1.0f, 0.0f); }, always},
    // relu6(x + 3) / 6, as PyTorch computes it; gradient 1/6 where -3 < x < 3, i.e. 0 < y < 1.
    {"hardsigmoid", [](Expr x, const Act&) { return clamp(x + 3.0f, 0.0f, 6.0f) / 6.0f; },
     [](Expr y, const Act&) { return select(y > 0.0f && y < 1.0f, 1.0f / 6.0f, 0.0f); }, always},
    // The rest are not monotonic or not invertible from y where it matters: their gradient reads x.
    // x * relu6(x + 3) / 6; PyTorch's gradient: 0 below -3, x / 3 + 1/2 up to 3 (inclusive), then 1.
    {"hardswish", [](Expr x, const Act&) { return x * clamp(x + 3.0f, 0.0f, 6.0f) / 6.0f; },
     [](Expr x, const Act&) { return select(x < -3.0f, 0.0f, select(x <= 3.0f, x / 3.0f + 0.5f, 1.0f)); }, never},
    // x > 0 ? x : alpha (e^x - 1); gradient alpha e^x for x <= 0, as PyTorch's.
    {"elu", [](Expr x, const Act& a) { return select(x > 0.0f, x, f32(a.arg(0)) * (exp(x) - 1.0f)); },
     [](Expr x, const Act& a) { return select(x > 0.0f, 1.0f, f32(a.arg(0)) * exp(x)); }, never},
    // x * sigmoid(x) (swish is the same layer); gradient s (1 + x (1 - s)).
    {"silu", [](Expr x, const Act&) { return x / (1.0f + exp(-x)); },
     [](Expr x, const Act&) {
       Expr s = 1.0f / (1.0f + exp(-x));
       return s * (1.0f + x * (1.0f - s));
     },
     never},
};

const ActivationRow& row(const Act& a) {
  for (const auto& r : kRows)
    if (a.name == r.name) return r;
  // The front end accepts only layers of its table; a name missing here is a bug in this table.
  throw std::logic_error("codegen/ops/activation.cpp: no row for activation '" + a.name + "'");
}

struct ActivationFuncs {
  Func out;
  std::vector<Argument> args;
};

// The element index of a tensor of per-image shape `d`: (x, y, c, n) or (f, n).
std::vector<Var> indexOf(const Dims& d, Vars& v) {
  return d.size() == 3 ? std::vector<Var>{v.x, v.y, v.c, v.n} : std::vector<Var>{v.f, v.n};
}

ActivationFuncs activationForward(const KernelSpec& k) {
  ActivationFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam a = p.tensor("a", k.in);
  f.args = p.args();
  std::vector<Var> idx = indexOf(k.in, v);
  std::vector<Expr> ix(idx.begin(), idx.end());
  f.out = Func("act_out");
  f.out(idx) = applyAct(a(ix), k.act);
  return f;
}

ActivationFuncs activationBackward(const KernelSpec& k) {
  ActivationFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", k.out), saved = p.tensor(gradReadsOutput(k.act) ? "y" : "x", k.out);
  f.args = p.args();
  std::vector<Var> idx = indexOf(k.out, v);
  std::vector<Expr> ix(idx.begin(), idx.end());
  f.out = Func("act_dx");
  f.out(idx) = dy(ix) * actDeriv(saved(ix), k.act);
  return f;
}

void activationCpu(ActivationFuncs& f, const KernelSpec& k) {
  Vars v;
  if (k.out.size() == 3) scheduleSpatial(f.out, k, v);
  else scheduleFlat(f.out, k, v);
}

}  // namespace

ArgNames activationArgs(const KernelSpec&) { return {"a"}; }
ArgNames actGradArgs(const KernelSpec& k) { return {"dy", gradReadsOutput(k.act) ? "y" : "x"}; }

bool gradReadsOutput(const Act& a) { return a.none() || row(a).readsOutput(a); }

bool activationKnown(const std::string& name) {
  for (const auto& r : kRows)
    if (name == r.name) return true;
  return false;
}

Expr applyAct(Expr v, const Act& a) { return a.none() ? v : row(a).forward(v, a); }

Expr actDeriv(Expr v, const Act& a) { return a.none() ? Expr(1.0f) : row(a).deriv(v, a); }

Lowered lowerActivation(const KernelSpec& k) { return lowerWithSchedules(k, activationForward(k), activationCpu); }
Lowered lowerActGrad(const KernelSpec& k) { return lowerWithSchedules(k, activationBackward(k), activationCpu); }

// ---- Plan steps (plan_builder.h) ----

// Inference: an activation that no kernel before it absorbed is a kernel of its own. Training: a
// group of its own (its gradient: the ActGrad kernel that TrainingBuilder::backward makes for
// every group's activation), which passes that gradient to its input.
void activationPlan(InferenceBuilder& b, const Node& n) {
  KernelSpec s = b.specOf(n);
  s.kind = KernelKind::Activation;
  s.act = actOf(n);
  b.emit(s, {{"a", b.act(n.inputs[0])}}, n, n.name);
}

void activationForward(TrainingBuilder& b, const Node& n) {
  Group gr = Group::of(n);
  gr.act = actOf(n);
  gr.tail = n.id;
  gr.out = b.tensorOf[n.id] = b.newTensor(n.shape, n.name);
  b.groupOfTail[n.id] = (int)b.groups.size();
  b.groups.push_back(gr);
  b.call(b.spec(KernelKind::Activation, n.shape, n.shape, n.attrs, gr.act), {{"a", b.act(b.tensorOf[n.inputs[0]])}}, b.act(gr.out), n.name, n.id);
}

void activationBackward(TrainingBuilder& b, const BackStep& st) {
  if (b.needsGrad(st.xin)) b.contrib[st.xin].push_back(st.dPre);
}

}  // namespace cnnc::codegen
