// onnx_patterns.cpp: see onnx_patterns.h. The algorithm:
//  1. Count each value's reads (node inputs and graph outputs) and find its producer.
//  2. Walk the nodes in order; each node is tried as the last node of every pattern, matching its
//     producers backwards. A value inside a pattern must be read only inside it (so fusing loses
//     nothing another node needs); the pattern's input and constants may be read anywhere.
//  3. A match replaces the last node by the fused node (same output, so later nodes are untouched) and
//     marks the others dead. Patterns are tried in an order where a fused node can be part of a later
//     pattern (Norm, then its per-channel scale and shift).
//  4. Dead nodes are dropped; the order of the rest stays topological, since a fused node sits where
//     its last node was and reads only values computed before its first.
#include "onnx_patterns.h"

#include <onnx/defs/tensor_proto_util.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

namespace cnnc::interop {

namespace {

class Matcher {
 public:
  Matcher(std::vector<onnx::NodeProto>& nodes, const PatternEnv& env) : nodes_(nodes), env_(env), dead_(nodes.size(), false) {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      for (const auto& v : nodes_[i].input())
        if (!v.empty()) reads_[v]++;
      for (const auto& v : nodes_[i].output()) producer_[v] = (int)i;
    }
    for (const auto& v : env_.graphOutputs) reads_[v]++;
  }

  void run() {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (dead_[i]) continue;
      gelu(i) || unaryTimesX(i) || norm(i) || groupNorm(i) || normAffine(i) || channelShuffle(i) || lastLinear(i) || adaptivePool(i);
    }
    std::vector<onnx::NodeProto> kept;
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (!dead_[i]) kept.push_back(std::move(nodes_[i]));
    nodes_ = std::move(kept);
  }

 private:
  using Node = onnx::NodeProto;

  // The node computing `v` when it is an `op` (domain ai.onnx unless `cnnc`) whose output is read
  // `reads` times in all: a value inside a pattern. Its index goes to `inner`.
  const Node* inner(const std::string& v, const char* op, int reads = 1, bool cnnc = false) {
    auto it = producer_.find(v);
    if (it == producer_.end() || dead_[it->second]) return nullptr;
    const Node& n = nodes_[it->second];
    bool domainOk = cnnc ? n.domain() == "cnnc" : (n.domain().empty() || n.domain() == "ai.onnx");
    if (n.op_type() != op || !domainOk || n.output(0) != v || readsOf(v) != reads) return nullptr;
    pending_.push_back(it->second);
    return &n;
  }
  int readsOf(const std::string& v) const {
    auto it = reads_.find(v);
    return it == reads_.end() ? 0 : it->second;
  }

  std::optional<double> scalar(const std::string& v) const {
    const onnx::TensorProto* t = env_.constant(v);
    if (!t) return std::nullopt;
    int64_t count = 1;
    for (int64_t d : t->dims()) count *= d;
    if (count != 1) return std::nullopt;
    try {
      return env_.floats(*t).at(0);
    } catch (...) {
      return std::nullopt;
    }
  }
  static bool near(std::optional<double> v, double want) { return v && std::fabs(*v - want) <= 1e-6 * std::max(1.0, std::fabs(want)); }

  static const onnx::AttributeProto* attr(const Node& n, const char* name) {
    for (const auto& a : n.attribute())
      if (a.name() == name) return &a;
    return nullptr;
  }
  static std::vector<int64_t> ints(const Node& n, const char* name) {
    auto* a = attr(n, name);
    return a ? std::vector<int64_t>(a->ints().begin(), a->ints().end()) : std::vector<int64_t>{};
  }

  // Commits a match: node i becomes `fused`, the pending inner nodes die.
  bool replace(size_t i, Node fused) {
    fused.set_domain("cnnc");
    if (fused.name().empty()) fused.set_name(nodes_[i].name());
    fused.clear_output();
    fused.add_output(nodes_[i].output(0));
    for (int d : pending_) dead_[d] = true;
    pending_.clear();
    nodes_[i] = std::move(fused);
    return true;
  }
  bool fail() {
    pending_.clear();
    return false;
  }
  static Node make(const std::string& op, const std::vector<std::string>& inputs) {
    Node n;
    n.set_op_type(op);
    for (const auto& v : inputs) n.add_input(v);
    return n;
  }
  static void setInt(Node& n, const char* name, int64_t v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void setFloat(Node& n, const char* name, float v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  static void setString(Node& n, const char* name, const std::string& v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
  }

  // Tries f(a, b) and f(b, a) for a binary node's operands; the first that matches wins.
  template <class F>
  bool either(const Node& n, F f) {
    if (n.input_size() != 2) return false;
    size_t mark = pending_.size();  // what the first try adds to pending_ is undone before the second
    if (f(n.input(0), n.input(1))) return true;
    pending_.resize(mark);
    if (f(n.input(1), n.input(0))) return true;
    pending_.resize(mark);
    return false;
  }

  // gelu: 0.5 * (x * (1 + erf(x / sqrt 2))), and its tanh form
  // 0.5 * (x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))) with x^3 as x * x * x or Pow(x, 3).
  bool gelu(size_t i) {
    const Node& t = nodes_[i];
    if (t.op_type() != "Mul" || !t.domain().empty()) return false;
    int approx = -1;
    std::string x;
    bool ok = either(t, [&](const std::string& a, const std::string& half) {
      if (!near(scalar(half), 0.5)) return false;
      const Node* xa = inner(a, "Mul");
      return xa && either(*xa, [&](const std::string& xx, const std::string& b) {
        const Node* add = inner(b, "Add");
        return add && either(*add, [&](const std::string& e, const std::string& one) {
          if (!near(scalar(one), 1.0)) return false;
          if (const Node* erf = inner(e, "Erf")) {
            const Node* div = inner(erf->input(0), "Div");
            if (div && div->input(0) == xx && near(scalar(div->input(1)), std::sqrt(2.0))) return x = xx, approx = 0, true;
            return false;
          }
          const Node* th = inner(e, "Tanh");
          const Node* arg = th ? inner(th->input(0), "Mul") : nullptr;
          return arg && either(*arg, [&](const std::string& poly, const std::string& k) {
            if (!near(scalar(k), std::sqrt(2.0 / M_PI))) return false;
            const Node* p = inner(poly, "Add");
            return p && either(*p, [&](const std::string& x1, const std::string& cx3) {
              if (x1 != xx) return false;
              const Node* m = inner(cx3, "Mul");
              return m && either(*m, [&](const std::string& x3, const std::string& c) {
                if (!near(scalar(c), 0.044715)) return false;
                if (const Node* pw = inner(x3, "Pow")) return pw->input(0) == xx && near(scalar(pw->input(1)), 3.0) && (x = xx, approx = 1, true);
                const Node* m3 = inner(x3, "Mul");
                return m3 && either(*m3, [&](const std::string& x2, const std::string& x1b) {
                  const Node* sq = inner(x2, "Mul");
                  return x1b == xx && sq && sq->input(0) == xx && sq->input(1) == xx && (x = xx, approx = 1, true);
                });
              });
            });
          });
        });
      });
    });
    if (!ok) return fail();
    Node f = make("Gelu", {x});
    setInt(f, "approximate", approx);
    return replace(i, f);
  }

  // x * sigmoid(x) (silu), x * tanh(softplus(x)) (mish), x * hardsigmoid(x) with PyTorch's 1/6 and 0.5
  // (hardswish before opset 14).
  bool unaryTimesX(size_t i) {
    const Node& t = nodes_[i];
    if (t.op_type() != "Mul" || !t.domain().empty()) return false;
    std::string op, x;
    bool ok = either(t, [&](const std::string& xx, const std::string& g) {
      if (const Node* s = inner(g, "Sigmoid")) return s->input(0) == xx && (op = "Silu", x = xx, true);
      if (const Node* h = inner(g, "HardSigmoid")) {
        auto* a = attr(*h, "alpha");
        auto* b = attr(*h, "beta");
        return h->input(0) == xx && a && b && std::fabs(a->f() - 1.0 / 6.0) < 1e-6 && std::fabs(b->f() - 0.5) < 1e-6 && (op = "HardSwish", x = xx, true);
      }
      const Node* th = inner(g, "Tanh");
      const Node* sp = th ? inner(th->input(0), "Softplus") : nullptr;
      return sp && sp->input(0) == xx && (op = "Mish", x = xx, true);
    });
    if (!ok) return fail();
    return replace(i, make(op, {x}));
  }

  // (x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) over axis 1 of [N, C, H, W] (each pixel's
  // channels) or of [N, F] (the features): a layer norm without its scale and shift.
  bool norm(size_t i) {
    const Node& t = nodes_[i];
    if (t.op_type() != "Div" || !t.domain().empty()) return false;
    const std::string& c = t.input(0);
    const Node* sqrt = inner(t.input(1), "Sqrt");
    const Node* add = sqrt ? inner(sqrt->input(0), "Add") : nullptr;
    std::optional<double> eps;
    std::string var;
    if (!add || !either(*add, [&](const std::string& v, const std::string& e) { return (eps = scalar(e)) && (var = v, true); })) return fail();
    const Node* rv = inner(var, "ReduceMean");
    if (!rv) return fail();
    int cReads;
    const Node* sq = inner(rv->input(0), "Mul");
    if (sq && sq->input(0) == c && sq->input(1) == c) cReads = 3;
    else if ((sq = inner(rv->input(0), "Pow")) && sq->input(0) == c && near(scalar(sq->input(1)), 2.0)) cReads = 2;
    else return fail();
    const Node* sub = inner(c, "Sub", cReads);
    const Node* rm = sub ? inner(sub->input(1), "ReduceMean") : nullptr;
    if (!rm || rm->input(0) != sub->input(0)) return fail();
    const std::string& x = sub->input(0);
    auto shape = env_.shape(x);
    auto axes = ints(*rm, "axes");
    if (axes != ints(*rv, "axes") || axes.size() != 1) return fail();
    int64_t axis = axes[0] < 0 ? axes[0] + (int64_t)shape.size() : axes[0];
    bool last = shape.size() == 4 && axis == 3;  // a channels-last tensor's channels (import checks it is one)
    if (!((shape.size() == 4 || shape.size() == 2) && axis == 1) && !last) return fail();
    Node f = make("Norm", {x});
    setString(f, "kind", "layer");
    setInt(f, "last", last);
    setFloat(f, "eps", (float)*eps);
    return replace(i, f);
  }

  // Reshape(x, [N, G, -1]) -> InstanceNormalization(ones, zeros) -> Reshape(back to x's shape): x
  // normalised over groups of channels and the plane (PyTorch's GroupNorm export, and cnnc's for
  // group and instance norm).
  bool groupNorm(size_t i) {
    const Node& t = nodes_[i];
    if (t.op_type() != "Reshape" || !t.domain().empty()) return false;
    const Node* in = inner(t.input(0), "InstanceNormalization");
    const Node* r1 = in ? inner(in->input(0), "Reshape") : nullptr;
    if (!r1) return fail();
    const std::string& x = r1->input(0);
    auto xs = env_.shape(x), gs = env_.shape(r1->output(0)), ys = env_.shape(t.output(0));
    if (xs.size() != 4 || gs.size() != 3 || ys != xs || gs[1] <= 0 || xs[1] <= 0 || xs[1] % gs[1]) return fail();
    for (int k = 1; k < 3; ++k) {  // the instance norm's own scale and shift must be 1 and 0
      const onnx::TensorProto* p = env_.constant(in->input(k));
      if (!p) return fail();
      for (float v : env_.floats(*p))
        if (v != (k == 1 ? 1.0f : 0.0f)) return fail();
    }
    auto* e = attr(*in, "epsilon");
    Node f = make("Norm", {x});
    setString(f, "kind", "group");
    setInt(f, "groups", gs[1]);
    setFloat(f, "eps", e ? e->f() : 1e-5f);
    return replace(i, f);
  }

  // Norm(x) * weight + bias with one weight and one bias per channel: the norm's affine parameters.
  bool normAffine(size_t i) {
    const Node& t = nodes_[i];
    if (t.op_type() != "Add" || !t.domain().empty()) return false;
    Node f;
    bool ok = either(t, [&](const std::string& p, const std::string& bias) {
      const Node* mul = inner(p, "Mul");
      return mul && env_.constant(bias) && either(*mul, [&](const std::string& y, const std::string& w) {
        const Node* n = inner(y, "Norm", 1, true);
        if (!n || n->input_size() != 1 || !env_.constant(w)) return false;
        auto xs = env_.shape(n->input(0));
        bool last = attr(*n, "last") && attr(*n, "last")->i();
        auto ok = [&](const std::string& v) { return last ? perLast(v, xs) : perChannel(v, xs); };
        if (!ok(w) || !ok(bias)) return false;
        f = *n;
        f.add_input(w);
        f.add_input(bias);
        f.set_name(t.name());
        return true;
      });
    });
    if (!ok) return fail();
    return replace(i, f);
  }
  // One value per channel of `xs` ([N, C, H, W]: [C, 1, 1] or [1, C, 1, 1]; [N, F]: [F] or [1, F]).
  bool perChannel(const std::string& v, const std::vector<int64_t>& xs) const {
    const onnx::TensorProto* c = env_.constant(v);
    return c && xs.size() >= 2 && channelCount(*c, xs) == xs[1];
  }

  // One value per entry of the last axis of `xs` (a channels-last tensor's channels): [C], [1, 1, 1, C].
  bool perLast(const std::string& v, const std::vector<int64_t>& xs) const {
    const onnx::TensorProto* c = env_.constant(v);
    if (!c || xs.empty() || c->dims_size() == 0 || c->dims_size() > (int)xs.size() || c->dims(c->dims_size() - 1) != xs.back()) return false;
    for (int k = 0; k + 1 < c->dims_size(); ++k)
      if (c->dims(k) != 1) return false;
    return true;
  }

  // Reshape(x, [N, G, C/G, H, W]) -> Transpose(0, 2, 1, 3, 4) -> Reshape(back to [N, C, H, W]).
  bool channelShuffle(size_t i) {
    const Node& t = nodes_[i];
    if (t.op_type() != "Reshape" || !t.domain().empty()) return false;
    const Node* tr = inner(t.input(0), "Transpose");
    const Node* r1 = tr ? inner(tr->input(0), "Reshape") : nullptr;
    if (!r1 || ints(*tr, "perm") != std::vector<int64_t>{0, 2, 1, 3, 4}) return fail();
    const std::string& x = r1->input(0);
    auto xs = env_.shape(x), ss = env_.shape(r1->output(0)), ys = env_.shape(t.output(0));
    if (xs.size() != 4 || ss.size() != 5 || ys != xs || ss[1] <= 0 || ss[1] * ss[2] != xs[1] || ss[3] != xs[2] || ss[4] != xs[3]) return fail();
    Node f = make("ChannelShuffle", {x});
    setInt(f, "groups", ss[1]);
    return replace(i, f);
  }

  // MatMul(x, W^T [C, O]) + bias [O]: a linear layer over x's last axis (PyTorch's nn.Linear on a
  // channels-last tensor, as in ConvNeXt's blocks, and cnnc's linear(per_pixel=true)).
  bool lastLinear(size_t i) {
    const Node& t = nodes_[i];
    if (t.op_type() != "Add" || !t.domain().empty()) return false;
    Node f;
    bool ok = either(t, [&](const std::string& y, const std::string& b) {
      const onnx::TensorProto* bias = env_.constant(b);
      const Node* mm = bias && bias->dims_size() == 1 ? inner(y, "MatMul") : nullptr;
      const onnx::TensorProto* w = mm ? env_.constant(mm->input(1)) : nullptr;
      if (!w || w->dims_size() != 2 || w->dims(1) != bias->dims(0) || env_.constant(mm->input(0))) return false;
      f = make("LastLinear", {mm->input(0), mm->input(1), b});
      return true;
    });
    if (!ok) return fail();
    return replace(i, f);
  }

  // An int64 constant's values (empty when `v` is not one).
  std::vector<int64_t> intsOf(const std::string& v) const {
    const onnx::TensorProto* t = env_.constant(v);
    if (!t || t->data_type() != onnx::TensorProto::INT64) return {};
    return onnx::ParseData<int64_t>(t);
  }

  // Concat along axis A (2 or 3) of Reduce{Mean,Max}(Slice(x, [s_i, e_i), axis A), axis A) for i < o,
  // with PyTorch's adaptive windows s_i = floor(i n / o), e_i = ceil((i + 1) n / o): an adaptive pool
  // along one axis (cnnc's export of adaptive pools with unequal windows, one stage per axis). A stage
  // over W of a stage over H is one adaptive pool.
  bool adaptivePool(size_t i) {
    const Node& t = nodes_[i];
    auto* ax = attr(t, "axis");
    if (t.op_type() != "Concat" || !t.domain().empty() || !ax || (ax->i() != 2 && ax->i() != 3) || t.input_size() < 2) return false;
    int64_t axis = ax->i(), o = t.input_size();
    std::string x, kind;
    for (int64_t k = 0; k < o; ++k) {
      const Node* r = inner(t.input((int)k), "ReduceMean");
      std::string rk = "avg";
      if (!r) r = inner(t.input((int)k), "ReduceMax"), rk = "max";
      const Node* sl = r ? inner(r->input(0), "Slice") : nullptr;
      if (!sl || ints(*r, "axes") != std::vector<int64_t>{axis} || (attr(*r, "keepdims") && attr(*r, "keepdims")->i() == 0)) return fail();
      if (k == 0) x = sl->input(0), kind = rk;
      if (sl->input(0) != x || rk != kind || sl->input_size() != 4 || intsOf(sl->input(3)) != std::vector<int64_t>{axis}) return fail();
      auto xs = env_.shape(x);
      if (xs.size() != 4 || xs[axis] <= 0) return fail();
      int64_t n = xs[axis];
      if (intsOf(sl->input(1)) != std::vector<int64_t>{k * n / o} || intsOf(sl->input(2)) != std::vector<int64_t>{((k + 1) * n + o - 1) / o}) return fail();
    }
    auto xs = env_.shape(x);
    std::vector<int64_t> out = {xs[2], xs[3]};
    out[axis - 2] = o;
    std::string src = x;
    // The H stage before this W stage, when only this stage reads it: one pool over both axes.
    if (axis == 3)
      if (const Node* h = inner(x, "AdaptivePool", (int)o, true))  // read by this stage's o Slices only
        if (attr(*h, "kind")->s() == kind && ints(*h, "out")[1] == xs[3]) out[0] = ints(*h, "out")[0], src = h->input(0);
    Node f = make("AdaptivePool", {src});
    setString(f, "kind", kind);
    auto* a = f.add_attribute();
    a->set_name("out");
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t v : out) a->add_ints(v);
    return replace(i, f);
  }

  std::vector<onnx::NodeProto>& nodes_;
  const PatternEnv& env_;
  std::vector<bool> dead_;
  std::map<std::string, int> producer_, reads_;
  std::vector<int> pending_;
};

}  // namespace

// How many values constant `c` gives when broadcast over `src` ([N, C, H, W] or [N, F]): 1 (all its
// dimensions 1), C (one per channel: [C, 1, 1] or [1, C, 1, 1] over an image, [C] or [1, C] over
// features), else -1 (it varies along H or W, or does not broadcast; a [C] vector over an image
// broadcasts along W, not along the channels).
int64_t channelCount(const onnx::TensorProto& c, const std::vector<int64_t>& src) {
  std::vector<int64_t> d(c.dims().begin(), c.dims().end());
  if (std::all_of(d.begin(), d.end(), [](int64_t x) { return x == 1; })) return 1;
  if (src.size() < 2 || src[1] <= 0 || d.size() > src.size()) return -1;
  d.insert(d.begin(), src.size() - d.size(), 1);  // numpy broadcasting aligns the last dimensions
  for (size_t i = 0; i < d.size(); ++i)
    if (d[i] != (i == 1 ? src[1] : 1)) return -1;
  return src[1];
}

void fusePatterns(std::vector<onnx::NodeProto>& nodes, const PatternEnv& env) { Matcher(nodes, env).run(); }

}  // namespace cnnc::interop
