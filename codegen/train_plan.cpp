// train_plan.cpp: from the graph IR to a training-step plan.
//
// 1. Forward, in node order, in training mode; each op's step is in its file (ops/<op>.cpp,
//    through opPlanEntry): a conv or linear absorbs a following activation (not a batch norm: its
//    batch statistics are needed on their own); a batch norm becomes BNStats + BNApply (absorbing
//    an activation); dropout draws its mask from a per-step seed; flatten is a view. Every kernel
//    is a "group" whose tail node carries the output.
// 2. The loss: cross-entropy (with label smoothing) of the flat output against the labels.
// 3. Backward, in reverse node order. The gradient of a node is the sum of the contributions of
//    its consumers (a residual input gets two). A group first goes back through its fused
//    activation (using the saved output), then through its op (its file's backward step): data
//    gradient for its input (skipped for the network input), weight and bias gradients into
//    per-parameter buffers.
// 4. Memory is planned over the whole sequence, so saved activations live exactly until their
//    backward kernel has read them.
#include "train_plan.h"

#include <stdexcept>

#include "ops/activation.h"
#include "ops/pool.h"
#include "plan_builder.h"

#include <nlohmann/json.hpp>

namespace cnnc::codegen {

TrainingBuilder::TrainingBuilder(const Graph& graph, TrainPlan& t) : g(graph), tp(t), p(t.plan) {
  size_t n = g.nodes.size();
  consumers.assign(n, 0);
  users.resize(n);
  tensorOf.assign(n, -1);
  groupOfTail.assign(n, -1);
  isAlias.assign(n, false);
  done.assign(n, false);
  contrib.resize(n);
  for (const auto& nd : g.nodes)
    for (int i : nd.inputs) { consumers[i]++; users[i].push_back(nd.id); }
  consumers[g.output]++;
  paramRefs.assign(g.params.size(), -1);
  tp.paramGrad.assign(g.params.size(), -1);
}

// A conv bias read only by batch norms has a zero gradient: batch statistics subtract each
// channel's mean, so the bias cancels (PyTorch's gradient is rounding noise, ~1e-7 of dy). Its
// BiasGrad kernel (2 ms of MiniVGG's step) is left out; the gradient buffer stays at its zeros.
bool TrainingBuilder::biasCancels(int m, const Group& gr) const {
  if (!gr.act.none() || gr.head != m || users[m].empty() || consumers[m] != (int)users[m].size()) return false;
  for (int u : users[m])
    if (g.nodes[u].op != OpKind::BatchNorm) return false;
  return true;
}

bool TrainingBuilder::tilesItsInput(const Node& pool) const { return pool.inputs.size() == 1 && poolTilesInput(pool.attrs, g.nodes[pool.inputs[0]].shape); }

int TrainingBuilder::soleUser(int id) const { return consumers[id] == 1 && users[id].size() == 1 ? users[id][0] : -1; }

int TrainingBuilder::newConst(ConstTensor c) {
  p.consts.push_back(c);
  return (int)p.consts.size() - 1;
}

int TrainingBuilder::paramRef(int idx) {
  if (paramRefs[idx] < 0) {
    ConstTensor c;
    c.kind = ConstTensor::ParamRef;
    c.param = idx;
    c.shape = g.params[idx].shape;
    paramRefs[idx] = newConst(c);
  }
  return paramRefs[idx];
}

int TrainingBuilder::gradOfParam(int idx) {
  if (tp.paramGrad[idx] < 0) {
    ConstTensor c;
    c.kind = ConstTensor::Grad;
    c.param = idx;
    c.shape = g.params[idx].shape;
    tp.paramGrad[idx] = newConst(c);
  }
  return tp.paramGrad[idx];
}

int TrainingBuilder::zeros(int64_t n) {
  ConstTensor z;
  z.kind = ConstTensor::Zeros;
  z.shape = {n};
  return newConst(z);
}

int TrainingBuilder::ones(int64_t n) {
  ConstTensor z;
  z.kind = ConstTensor::Ones;
  z.shape = {n};
  return newConst(z);
}

int TrainingBuilder::param(const Node& n, ParamRole role) const {
  for (int i : n.params) if (g.params[i].role == role) return i;
  return -1;
}

void TrainingBuilder::call(KernelSpec s, const NamedArgs& in, KernelArg out, const std::string& label, int node) {
  std::vector<KernelArg> args = bindArgs(s, in);
  args.push_back(out);
  p.calls.push_back({internSpec(p, std::move(s), specIndex), std::move(args), label, node});
}

KernelSpec TrainingBuilder::spec(KernelKind k, Dims in, Dims out, const Attrs& a, const Act& act) const {
  KernelSpec s;
  s.kind = k;
  s.in = std::move(in);
  s.out = std::move(out);
  s.attrs = a;
  s.act = act;
  return s;
}

int TrainingBuilder::finishGroup(Group gr, std::string& label, bool allowAct, bool noOutput) {
  int u = soleUser(gr.head);
  if (allowAct && u >= 0 && !done[u] && g.nodes[u].op == OpKind::Activation && gradReadsOutput(actOf(g.nodes[u]))) {
    gr.act = actOf(g.nodes[u]);
    gr.tail = u;
    done[u] = true;
    label += "+" + g.nodes[u].name;
  } else {
    gr.tail = gr.head;
  }
  gr.out = noOutput ? -1 : newTensor(g.nodes[gr.tail].shape, g.nodes[gr.tail].name);
  tensorOf[gr.tail] = gr.out;
  groupOfTail[gr.tail] = (int)groups.size();
  groups.push_back(gr);
  return gr.out;
}

int TrainingBuilder::gradOf(int m) {
  auto& c = contrib[m];
  if (c.empty()) return -1;
  int acc = c[0];
  const Dims& shape = g.nodes[m].shape;
  for (size_t i = 1; i < c.size(); ++i) {
    int t = newTensor(shape, g.nodes[m].name + ".grad");
    KernelSpec s = spec(KernelKind::Add, shape, shape);
    s.extraIns = {shape};
    call(s, {{"a", act(acc)}, {"b", act(c[i])}}, act(t), "d" + g.nodes[m].name + " (sum)", m);
    acc = t;
  }
  c = {acc};
  return acc;
}

void TrainingBuilder::giveInput(const BackStep& st, KernelKind k, const NamedArgs& args, const Attrs& a, const Act& fused, std::vector<Dims> extra) {
  if (!needsGrad(st.xin)) return;
  int dx = newTensor(st.inShape, "d" + g.nodes[st.xin].name);
  KernelSpec ks = spec(k, st.head.shape, st.inShape, a, fused);
  ks.extraIns = extra;
  call(ks, args, act(dx), st.dl + " (input)", st.m);
  contrib[st.xin].push_back(dx);
}

void TrainingBuilder::singleForward(const Node& n, KernelKind k) {
  std::string label = n.name;
  int y = finishGroup(Group::of(n), label, false);
  call(spec(k, g.nodes[n.inputs[0]].shape, n.shape, n.attrs), {{"input", act(tensorOf[n.inputs[0]])}}, act(y), label, n.id);
}

void TrainingBuilder::weightedForward(const Node& n, KernelKind k) {
  int x = tensorOf[n.inputs[0]];
  int w = param(n, ParamRole::Weight), b = param(n, ParamRole::Bias);
  int bc = b >= 0 ? paramRef(b) : zeros(n.attrs.out);
  NamedArgs args{{"input", act(x)}, {"weight", cst(paramRef(w))}, {"bias", cst(bc)}};
  Group gr = Group::of(n);
  std::string label = n.name;
  int y = finishGroup(gr, label, true);
  call(spec(k, g.nodes[n.inputs[0]].shape, n.shape, n.attrs, groups.back().act), args, act(y), label, n.id);
}

void TrainingBuilder::weightedBackward(const BackStep& st, KernelKind data, KernelKind weight) {
  const Node& head = st.head;
  int w = param(head, ParamRole::Weight), b = param(head, ParamRole::Bias);
  giveInput(st, data, {{"dy", act(st.dPre)}, {"weight", cst(paramRef(w))}}, head.attrs);
  // A per-pixel linear is a 1x1 conv whose weight keeps Linear's [out, C] in state_dict; the
  // weight-gradient kernel computes the conv's [out, C, 1, 1] (the same elements).
  Dims ws = g.params[w].shape;
  if (head.op == OpKind::Conv && ws.size() == 2) ws = {ws[0], ws[1], 1, 1};
  KernelSpec sw = spec(weight, st.inShape, ws, head.attrs);
  sw.extraIns = {head.shape};
  call(sw, {{"dy", act(st.dPre)}, {"x", act(st.x)}}, cst(gradOfParam(w)), st.dl + " (weight)", st.m);
  if (b >= 0 && biasCancels(st.m, st.gr)) gradOfParam(b);  // listed, never written
  else if (b >= 0) call(spec(KernelKind::BiasGrad, head.shape, {head.shape[0]}), {{"dy", act(st.dPre)}}, cst(gradOfParam(b)), st.dl + " (bias)", st.m);
}

void TrainingBuilder::forward() {
  for (const auto& n : g.nodes) {
    if (done[n.id]) continue;
    done[n.id] = true;
    if (n.op == OpKind::Input) {
      tensorOf[n.id] = p.input = newTensor(n.shape, n.name);
    } else if (n.op == OpKind::Flatten) {
      tensorOf[n.id] = newTensor(n.shape, n.name, p.acts[tensorOf[n.inputs[0]]].storage);
      isAlias[n.id] = true;
    } else {
      opPlanEntry(n.op).forward(*this, n);  // the op's file (ops/registry.cpp)
    }
  }
  if (!deferredApply.empty()) throw std::logic_error("batch norm '" + g.nodes[deferredApply.begin()->first].name + "' waited for an add that never planned it");
}

void TrainingBuilder::backward() {
  for (int m = (int)g.nodes.size() - 1; m >= 0; --m) {
    const Node& n = g.nodes[m];
    if (isAlias[m]) {
      int d = gradOf(m);
      if (d >= 0 && needsGrad(n.inputs[0]))
        contrib[n.inputs[0]].push_back(newTensor(g.nodes[n.inputs[0]].shape, "d" + n.name, p.acts[d].storage));
      continue;
    }
    if (groupOfTail[m] < 0) continue;
    const Group& gr = groups[groupOfTail[m]];
    const Node& head = g.nodes[gr.head];
    // A batch norm's or a concat's fused activation is differentiated inside its backward kernels
    // (a concat's in each branch's Slice, which then reads dy and y once instead of a whole pass
    // over the concatenation first).
    bool actInOp = !gr.act.none() && (head.op == OpKind::BatchNorm || head.op == OpKind::Concat);
    bool actGrad = !gr.act.none() && !actInOp;
    // Where the activation's gradient has two or more contributions (a residual block's output
    // feeds the next block's branch and its skip), the ActGrad kernel adds the last one itself:
    // (sum + last) * act' in one pass, not a sum kernel and then the ActGrad reading its result
    // (the same adds in the same order).
    int last = -1;
    if (actGrad && contrib[m].size() >= 2) {
      last = contrib[m].back();
      contrib[m].pop_back();
    }
    int dOut = gradOf(m);
    if (dOut < 0) continue;
    std::string dl = "d" + head.name;
    int dPre = dOut;
    if (actGrad) {
      dPre = newTensor(head.shape, head.name + ".dpre");
      // The saved output y, or for a standalone activation its input x (actGradArgs picks).
      NamedArgs in{{"dy", act(dOut)}, {"y", act(gr.out)}};
      if (head.op == OpKind::Activation) in.push_back({"x", act(tensorOf[head.inputs[0]])});
      KernelSpec s = spec(KernelKind::ActGrad, head.shape, head.shape, head.attrs, gr.act);
      if (last >= 0) {
        s.extraIns = {head.shape};
        in.push_back({"dy2", act(last)});
      }
      call(s, in, act(dPre), dl + (last >= 0 ? " (sum, activation)" : " (activation)"), m);
    }
    int xin = head.inputs.empty() ? -1 : head.inputs[0];
    BackStep st{gr, head, m, dPre, xin, xin >= 0 ? tensorOf[xin] : -1, xin >= 0 ? g.nodes[xin].shape : head.shape, dl, actInOp};
    opPlanEntry(head.op).backward(*this, st);  // the op's file (ops/registry.cpp)
  }
}

bool buildTrainingPlan(const Graph& g, TrainPlan& tp, std::string& err) {
  const Node& outNode = g.nodes[g.output];
  if (outNode.shape.size() != 1 && outNode.shape.size() != 3) {
    err = "the network's output " + dimsStr(outNode.shape) + " is neither class scores [K] nor a map of per-pixel scores [K,H,W]";
    return false;
  }
  TrainingBuilder b(g, tp);
  b.forward();
  Plan& p = tp.plan;
  int logits = b.tensorOf[g.output];
  // Classification: one label per image; segmentation ([K,H,W] scores): one per pixel.
  const Dims& out = outNode.shape;
  Dims labelShape = out.size() == 3 ? Dims{out[1], out[2]} : Dims{1};
  tp.labels = b.newTensor(labelShape, "labels");
  tp.loss = b.newTensor({1}, "loss");
  ConstTensor e;
  e.kind = ConstTensor::Eps;
  e.shape = {1};
  tp.eps = b.newConst(e);
  NamedArgs ce{{"logits", b.act(logits)}, {"labels", b.act(tp.labels)}, {"eps", b.cst(tp.eps)}};
  b.call(b.spec(KernelKind::CELoss, out, {1}), ce, b.act(tp.loss), "loss", g.output);
  tp.forwardCalls = (int)p.calls.size();
  int dlogits = b.newTensor(out, "dlogits");
  b.call(b.spec(KernelKind::CEGrad, out, out), ce, b.act(dlogits), "dloss", g.output);
  b.contrib[g.output].push_back(dlogits);
  b.backward();
  p.output = logits;
  p.pinned = {tp.labels, tp.loss};  // written before and read after the calls by the runtime
  planMemory(p);
  return true;
}

std::string trainPlanToJson(const TrainPlan& tp, const Graph& g, const SourceManager& sm, const std::string& target) {
  using namespace plan_schema;
  nlohmann::json j = planJsonObject(tp.plan, g, sm, target);
  j[key::mode] = kModeTrain;
  j[key::labels] = tp.labels;
  j[key::loss] = tp.loss;
  j[key::eps] = tp.eps;
  j[key::param_grad] = tp.paramGrad;
  j[key::forward_calls] = tp.forwardCalls;
  nlohmann::json bns = nlohmann::json::array();
  for (const auto& b : tp.bns)
    bns.push_back({{key::stats, b.stats}, {key::dparams, b.dparams}, {key::gamma, b.gamma}, {key::beta, b.beta}, {key::mean, b.mean},
                   {key::var, b.var}, {key::tracked, b.tracked}, {key::momentum, b.momentum}, {key::elems_per_image, b.elemsPerImage}});
  j[key::bns] = bns;
  j[key::seeds] = tp.seeds;
  return j.dump();
}

}  // namespace cnnc::codegen
