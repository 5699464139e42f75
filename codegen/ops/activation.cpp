// activation.cpp: the elementwise activations, one row each, and their two kernels.
//
//   Activation  x -> act(x)
//   ActGrad     dy (, dy2), v -> dx = (dy + dy2) * act'(x), with v = y (the saved output) where
//               the row's derivative is written from y, else v = x (the activation's input);
//               dy2 (extraIns) is a second contribution to the gradient, added here
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

const float kInvSqrt2 = 0.70710678118654752f, kInvSqrt2Pi = 0.39894228040143268f, kSqrt2OverPi = 0.79788456080286536f;

// erf(x) in float32 as a rational function of x^2 on [-4, 4] (beyond, erf is +-1 to float32's
// precision): the approximation of Eigen's and TensorFlow's float erf. Halide 14 has no erf.
// Measured against float64 erf on [-6, 6] in steps of 6e-5: max abs error 4.2e-7 (erf), 1.3e-6
// (gelu; 3 ulp of its largest value there).
Expr erfApprox(Expr x) {
  static const float a[] = {-2.72614225801306e-10f, 2.77068142495902e-08f, -2.10102402082508e-06f, -5.69250639462346e-05f,
                            -7.34990630326855e-04f, -2.95459980854025e-03f, -1.60960333262415e-02f};
  static const float b[] = {-1.45660718464996e-05f, -2.13374055278905e-04f, -1.68282697438203e-03f, -7.37332916720468e-03f,
                            -1.42647390514189e-02f};
  Expr c = clamp(x, -4.0f, 4.0f), c2 = c * c;
  Expr p = a[0], q = b[0];
  for (int i = 1; i < 7; ++i) p = p * c2 + a[i];
  for (int i = 1; i < 5; ++i) q = q * c2 + b[i];
  return c * p / q;
}

Expr mishTanhSoftplus(Expr x) {
  Expr e = exp(min(x, 20.0f)), n = e * (e + 2.0f);
  return select(x > 20.0f, 1.0f, n / (n + 2.0f));
}

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
    // x * Phi(x) = x/2 (1 + erf(x / sqrt 2)); gradient Phi(x) + x phi(x). erf is a rational fit (erfApprox).
    {"gelu", [](Expr x, const Act&) { return 0.5f * x * (1.0f + erfApprox(x * kInvSqrt2)); },
     [](Expr x, const Act&) { return 0.5f * (1.0f + erfApprox(x * kInvSqrt2)) + x * kInvSqrt2Pi * exp(-0.5f * x * x); }, never},
    // gelu(approximate="tanh"): x/2 (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), as PyTorch.
    {"gelu_tanh", [](Expr x, const Act&) { return 0.5f * x * (1.0f + vectorTanh(kSqrt2OverPi * (x + 0.044715f * x * x * x))); },
     [](Expr x, const Act&) {
       Expr t = vectorTanh(kSqrt2OverPi * (x + 0.044715f * x * x * x));
       return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kSqrt2OverPi * (1.0f + 3 * 0.044715f * x * x);
     },
     never},
    // x tanh(softplus(x)). With e = exp(x), tanh(log(1 + e)) = n / (n + 2), n = e (e + 2), which keeps
    // its precision for x << 0 (where log1p is not at hand); above 20 it is 1 in float32 and e*e would
    // overflow. Gradient t + x sigmoid(x) (1 - t^2), PyTorch's.
    {"mish", [](Expr x, const Act&) { return x * mishTanhSoftplus(x); },
     [](Expr x, const Act&) {
       Expr t = mishTanhSoftplus(x), e = exp(min(x, 20.0f));
       return t + x * (e / (1.0f + e)) * (1.0f - t * t);
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

ActivationFuncs activationForward(const KernelSpec& k) {
  ActivationFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam a = p.tensor("a", k.in);
  f.args = p.args();
  std::vector<Var> idx = elementVars(k.in, v);
  std::vector<Expr> ix(idx.begin(), idx.end());
  f.out = Func("act_out");
  f.out(idx) = applyAct(a(ix), k.act);
  return f;
}

ActivationFuncs activationBackward(const KernelSpec& k) {
  ActivationFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", k.out);
  ImageParam dy2 = k.extraIns.empty() ? ImageParam() : p.tensor("dy2", k.out);
  ImageParam saved = p.tensor(gradReadsOutput(k.act) ? "y" : "x", k.out);
  f.args = p.args();
  std::vector<Var> idx = elementVars(k.out, v);
  std::vector<Expr> ix(idx.begin(), idx.end());
  f.out = Func("act_dx");
  Expr d = dy(ix);
  if (dy2.defined()) d = d + dy2(ix);
  f.out(idx) = d * actDeriv(saved(ix), k.act);
  return f;
}

void activationCpu(ActivationFuncs& f, const KernelSpec& k) {
  Vars v;
  if (k.out.size() == 3) scheduleSpatial(f.out, k, v);
  else scheduleFlat(f.out, k, v);
}

}  // namespace

ArgNames activationArgs(const KernelSpec&) { return {"a"}; }
ArgNames actGradArgs(const KernelSpec& k) {
  if (!k.extraIns.empty()) return {"dy", "dy2", gradReadsOutput(k.act) ? "y" : "x"};
  return {"dy", gradReadsOutput(k.act) ? "y" : "x"};
}

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
