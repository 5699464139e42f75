// train_plan.cpp: from the graph IR to a training-step plan.
//
// 1. Forward, in node order, in training mode: a conv or linear absorbs a following activation
//    (not a batch norm: its batch statistics are needed on their own); a batch norm becomes
//    BNStats + BNApply (absorbing an activation); dropout draws its mask from a per-step seed;
//    flatten is a view. Every kernel is a "group" whose tail node carries the output.
// 2. The loss: cross-entropy (with label smoothing) of the flat output against the labels.
// 3. Backward, in reverse node order. The gradient of a node is the sum of the contributions of
//    its consumers (a residual input gets two). A group first goes back through its fused
//    activation (using the saved output), then through its op: data gradient for its input
//    (skipped for the network input), weight and bias gradients into per-parameter buffers.
// 4. Memory is planned over the whole sequence, so saved activations live exactly until their
//    backward kernel has read them.
#include "train_plan.h"

#include "ops/activation.h"
#include "ops/pool.h"

#include <functional>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

namespace cnnc::codegen {

namespace {

struct Group {
  OpKind op;
  int head = -1, tail = -1;
  Act act;
  int stats = -1, seed = -1;
  int out = -1;  // ActTensor of the tail's output
};

struct TBuilder {
  const Graph& g;
  TrainPlan& tp;
  Plan& p;
  std::vector<int> consumers;
  std::vector<std::vector<int>> users;
  std::vector<int> tensorOf, groupOfTail, paramRefs;
  // Max pools folded into the BN + ReLU before them (forward): the BN kernels compute the pool and,
  // backward, route its gradient themselves, so no MaxPool or MaxPoolBack kernel is made.
  std::set<int> foldedPools;
  std::map<int, int> pooledGrad;  // BN group tail -> the folded pool whose gradient its backward routes
  std::vector<bool> isAlias;
  std::vector<Group> groups;
  std::vector<std::vector<int>> contrib;
  std::map<std::string, int> specIndex;

  TBuilder(const Graph& graph, TrainPlan& t) : g(graph), tp(t), p(t.plan) {
    size_t n = g.nodes.size();
    consumers.assign(n, 0);
    users.resize(n);
    tensorOf.assign(n, -1);
    groupOfTail.assign(n, -1);
    isAlias.assign(n, false);
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
  bool biasCancels(int m, const Group& gr) const {
    if (!gr.act.none() || gr.head != m || users[m].empty() || consumers[m] != (int)users[m].size()) return false;
    for (int u : users[m])
      if (g.nodes[u].op != OpKind::BatchNorm) return false;
    return true;
  }

  // A max pool whose windows tile its input exactly (the rule of ops/pool.h).
  bool tilesItsInput(const Node& pool) const { return pool.inputs.size() == 1 && poolTilesInput(pool.attrs, g.nodes[pool.inputs[0]].shape); }

  int soleUser(int id) const { return consumers[id] == 1 && users[id].size() == 1 ? users[id][0] : -1; }

  int newTensor(const Dims& shape, const std::string& name, int storage = -1) { return addActTensor(p, shape, name, storage); }

  int newConst(ConstTensor c) {
    p.consts.push_back(c);
    return (int)p.consts.size() - 1;
  }

  int paramRef(int idx) {
    if (paramRefs[idx] < 0) {
      ConstTensor c;
      c.kind = ConstTensor::ParamRef;
      c.param = idx;
      c.shape = g.params[idx].shape;
      paramRefs[idx] = newConst(c);
    }
    return paramRefs[idx];
  }

  int gradOfParam(int idx) {
    if (tp.paramGrad[idx] < 0) {
      ConstTensor c;
      c.kind = ConstTensor::Grad;
      c.param = idx;
      c.shape = g.params[idx].shape;
      tp.paramGrad[idx] = newConst(c);
    }
    return tp.paramGrad[idx];
  }

  int zeros(int64_t n) {
    ConstTensor z;
    z.kind = ConstTensor::Zeros;
    z.shape = {n};
    return newConst(z);
  }

  int param(const Node& n, ParamRole role) const {
    for (int i : n.params) if (g.params[i].role == role) return i;
    return -1;
  }

  // Emits one kernel call: its inputs bound by name (bindArgs), then the output.
  void call(KernelSpec s, const NamedArgs& in, KernelArg out, const std::string& label, int node) {
    std::vector<KernelArg> args = bindArgs(s, in);
    args.push_back(out);
    p.calls.push_back({internSpec(p, std::move(s), specIndex), std::move(args), label, node});
  }

  KernelSpec spec(KernelKind k, Dims in, Dims out, const Attrs& a = Attrs(), const Act& act = Act()) {
    KernelSpec s;
    s.kind = k;
    s.in = std::move(in);
    s.out = std::move(out);
    s.attrs = a;
    s.act = act;
    return s;
  }

  KernelArg act(int t) const { return {false, t}; }
  KernelArg cst(int c) const { return {true, c}; }

  // A group's output tensor, its tail absorbing a single following activation whose gradient
  // reads its output (the group stores only that). With `noOutput` the group's output is never
  // stored (a folded pool computes its own from x): returns -1.
  int finishGroup(Group gr, std::string& label, bool allowAct, std::vector<bool>& done, bool noOutput = false) {
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

  bool forward(std::string& err) {
    std::vector<bool> done(g.nodes.size(), false);
    for (const auto& n : g.nodes) {
      if (done[n.id]) continue;
      done[n.id] = true;
      int x = n.inputs.empty() ? -1 : tensorOf[n.inputs[0]];
      const Dims& in = n.inputs.empty() ? n.shape : g.nodes[n.inputs[0]].shape;
      std::string label = n.name;
      Group gr;
      gr.op = n.op;
      gr.head = n.id;
      switch (n.op) {
        case OpKind::Input:
          tensorOf[n.id] = p.input = newTensor(n.shape, n.name);
          break;
        case OpKind::Flatten:
          tensorOf[n.id] = newTensor(n.shape, n.name, p.acts[x].storage);
          isAlias[n.id] = true;
          break;
        case OpKind::Dropout: {
          if (n.attrs.p == 0) {
            tensorOf[n.id] = newTensor(n.shape, n.name, p.acts[x].storage);
            isAlias[n.id] = true;
            break;
          }
          ConstTensor sd;
          sd.kind = ConstTensor::Seed;
          sd.shape = {2};
          gr.seed = newConst(sd);
          tp.seeds.push_back(gr.seed);
          int y = finishGroup(gr, label, false, done);
          call(spec(KernelKind::DropoutFwd, n.shape, n.shape, n.attrs), {{"x", act(x)}, {"seed", cst(groups.back().seed)}}, act(y), label, n.id);
          break;
        }
        case OpKind::Conv:
        case OpKind::Linear: {
          int w = param(n, ParamRole::Weight), b = param(n, ParamRole::Bias);
          int bc = b >= 0 ? paramRef(b) : zeros(n.attrs.out);
          NamedArgs args{{"input", act(x)}, {"weight", cst(paramRef(w))}, {"bias", cst(bc)}};
          int y = finishGroup(gr, label, true, done);
          call(spec(n.op == OpKind::Conv ? KernelKind::Conv : KernelKind::Linear, in, n.shape, n.attrs, groups.back().act), args, act(y), label, n.id);
          break;
        }
        case OpKind::BatchNorm: {
          BNInfo bi;
          bi.node = n.id;
          ConstTensor st;
          st.kind = ConstTensor::Stats;
          st.shape = {2, n.shape[0]};
          bi.stats = gr.stats = newConst(st);
          st.kind = ConstTensor::DParams;
          bi.dparams = newConst(st);
          bi.gamma = param(n, ParamRole::Weight); bi.beta = param(n, ParamRole::Bias);
          bi.mean = param(n, ParamRole::RunningMean); bi.var = param(n, ParamRole::RunningVar);
          bi.tracked = param(n, ParamRole::NumBatchesTracked);
          bi.momentum = n.attrs.momentum;
          bi.elemsPerImage = n.shape.size() == 3 ? n.shape[1] * n.shape[2] : 1;
          tp.bns.push_back(bi);
          call(spec(KernelKind::BNStats, in, {2, n.shape[0]}, n.attrs), {{"x", act(x)}}, cst(gr.stats), n.name + ".stats", n.id);
          // BN + ReLU read only by a max pool that tiles it: the pool folds in (foldedPools). One
          // kernel reads x and writes the pooled output; y = relu(BN(x)) is never stored, as
          // nothing else reads it (MiniVGG: a write and a read of 29 MB per step).
          int relu = soleUser(n.id), pool = relu >= 0 && actOf(g.nodes[relu]).is("relu") ? soleUser(relu) : -1;
          bool folds = pool >= 0 && g.nodes[pool].op == OpKind::MaxPool && tilesItsInput(g.nodes[pool]);
          int y = finishGroup(gr, label, true, done, folds);
          KernelSpec as = spec(KernelKind::BNApply, in, n.shape, n.attrs, groups.back().act);
          if (folds) {
            const Node& pn = g.nodes[pool];
            done[pn.id] = true;
            foldedPools.insert(pn.id);
            as.out = pn.shape;
            as.extraIns = {pn.shape};
            as.attrs.kernel[0] = pn.attrs.kernel[0];
            as.attrs.kernel[1] = pn.attrs.kernel[1];
            Group pg;
            pg.op = OpKind::MaxPool;
            pg.head = pg.tail = pn.id;
            y = pg.out = tensorOf[pn.id] = newTensor(pn.shape, pn.name);
            groupOfTail[pn.id] = (int)groups.size();
            groups.push_back(pg);
            label += "+" + pn.name;
          }
          call(as, {{"x", act(x)}, {"stats", cst(gr.stats)}, {"gamma", cst(paramRef(bi.gamma))}, {"beta", cst(paramRef(bi.beta))}}, act(y), label, n.id);
          break;
        }
        case OpKind::Activation: {
          gr.act = actOf(n);
          gr.tail = n.id;
          gr.out = tensorOf[n.id] = newTensor(n.shape, n.name);
          groupOfTail[n.id] = (int)groups.size();
          groups.push_back(gr);
          call(spec(KernelKind::Activation, n.shape, n.shape, n.attrs, gr.act), {{"a", act(x)}}, act(gr.out), label, n.id);
          break;
        }
        case OpKind::Add: {
          int acc = x;
          for (size_t i = 1; i < n.inputs.size(); ++i) {
            bool last = i + 1 == n.inputs.size();
            KernelSpec s = spec(KernelKind::Add, n.shape, n.shape, n.attrs);
            s.extraIns = {n.shape};
            int y;
            if (last) {
              y = finishGroup(gr, label, true, done);
              s.act = groups.back().act;
            } else {
              y = newTensor(n.shape, n.name);
            }
            call(s, {{"a", act(acc)}, {"b", act(tensorOf[n.inputs[i]])}}, act(y), label, n.id);
            acc = y;
          }
          break;
        }
        case OpKind::MaxPool:
        case OpKind::AvgPool:
        case OpKind::AdaptiveAvgPool:
        case OpKind::LRN:
        case OpKind::Softmax: {
          KernelKind k = n.op == OpKind::MaxPool ? KernelKind::MaxPool : n.op == OpKind::AvgPool ? KernelKind::AvgPool
                       : n.op == OpKind::AdaptiveAvgPool ? KernelKind::AdaptiveAvgPool : n.op == OpKind::LRN ? KernelKind::LRN : KernelKind::Softmax;
          int y = finishGroup(gr, label, false, done);
          call(spec(k, in, n.shape, n.attrs), {{"input", act(x)}}, act(y), label, n.id);
          break;
        }
        case OpKind::Concat: {
          KernelSpec s = spec(KernelKind::Concat, in, n.shape, n.attrs);
          NamedArgs args;
          for (size_t i = 0; i < n.inputs.size(); ++i) {
            args.push_back({"in" + std::to_string(i), act(tensorOf[n.inputs[i]])});
            if (i) s.extraIns.push_back(g.nodes[n.inputs[i]].shape);
          }
          int y = finishGroup(gr, label, false, done);
          call(s, args, act(y), label, n.id);
          break;
        }
      }
    }
    return true;
  }

  // The gradient of node m's output: the sum of its consumers' contributions (or -1: none).
  int gradOf(int m) {
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

  bool needsGrad(int node) const { return g.nodes[node].op != OpKind::Input; }

  void backward() {
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
      int dOut = gradOf(m);
      if (dOut < 0) continue;
      const Node& head = g.nodes[gr.head];
      std::string dl = "d" + head.name;
      int dPre = dOut;
      // A batch norm's fused activation is differentiated inside its backward kernels.
      bool actInBN = !gr.act.none() && head.op == OpKind::BatchNorm;
      if (!gr.act.none() && !actInBN) {
        dPre = newTensor(head.shape, head.name + ".dpre");
        // The saved output y, or for a standalone activation its input x (actGradArgs picks).
        NamedArgs in{{"dy", act(dOut)}, {"y", act(gr.out)}};
        if (head.op == OpKind::Activation) in.push_back({"x", act(tensorOf[head.inputs[0]])});
        call(spec(KernelKind::ActGrad, head.shape, head.shape, head.attrs, gr.act), in, act(dPre), dl + " (activation)", m);
      }
      if (head.op == OpKind::Activation) {
        if (needsGrad(head.inputs[0])) contrib[head.inputs[0]].push_back(dPre);
        continue;
      }
      int xin = head.inputs.empty() ? -1 : head.inputs[0];
      int x = xin >= 0 ? tensorOf[xin] : -1;
      const Dims& inShape = xin >= 0 ? g.nodes[xin].shape : head.shape;
      // The input gradient of kind `k` (with the activation whose gradient it applies inline).
      auto giveInput = [&](KernelKind k, const NamedArgs& args, const Attrs& a, const Act& fused = Act(), std::vector<Dims> extra = {}) {
        if (!needsGrad(xin)) return;
        int dx = newTensor(inShape, "d" + g.nodes[xin].name);
        KernelSpec ks = spec(k, head.shape, inShape, a, fused);
        ks.extraIns = extra;
        call(ks, args, act(dx), dl + " (input)", m);
        contrib[xin].push_back(dx);
      };
      switch (head.op) {
        case OpKind::Conv:
        case OpKind::Linear: {
          bool conv = head.op == OpKind::Conv;
          int w = param(head, ParamRole::Weight), b = param(head, ParamRole::Bias);
          giveInput(conv ? KernelKind::ConvBackData : KernelKind::LinearBackData, {{"dy", act(dPre)}, {"weight", cst(paramRef(w))}}, head.attrs);
          KernelSpec sw = spec(conv ? KernelKind::ConvBackWeight : KernelKind::LinearBackWeight, inShape, g.params[w].shape, head.attrs);
          sw.extraIns = {head.shape};
          call(sw, {{"dy", act(dPre)}, {"x", act(x)}}, cst(gradOfParam(w)), dl + " (weight)", m);
          if (b >= 0 && biasCancels(m, gr)) gradOfParam(b);  // listed, never written
          else if (b >= 0) call(spec(KernelKind::BiasGrad, head.shape, {head.shape[0]}), {{"dy", act(dPre)}}, cst(gradOfParam(b)), dl + " (bias)", m);
          break;
        }
        case OpKind::BatchNorm: {
          const BNInfo* bi = nullptr;
          for (const auto& b : tp.bns) if (b.node == head.id) bi = &b;
          // dPre is a max pool's gradient when that pool folded into this BN (foldedPools).
          Attrs ba = head.attrs;
          std::vector<Dims> pooled;
          if (auto it = pooledGrad.find(m); it != pooledGrad.end()) {
            const Node& pool = g.nodes[it->second];
            ba.kernel[0] = pool.attrs.kernel[0];
            ba.kernel[1] = pool.attrs.kernel[1];
            pooled = {pool.shape};
          }
          // With a fused activation both kernels take dy through its derivative; which of y, gamma
          // and beta that reads is the kernels' business (bnBackParamsArgs, bnBackDataArgs).
          NamedArgs in{{"dy", act(dPre)}, {"y", act(gr.out)}, {"x", act(x)}, {"stats", cst(gr.stats)},
                       {"gamma", cst(paramRef(bi->gamma))}, {"beta", cst(paramRef(bi->beta))}};
          KernelSpec sp = spec(KernelKind::BNBackParams, inShape, {2, inShape[0]}, ba, actInBN ? gr.act : Act());
          sp.extraIns = pooled;
          call(sp, in, cst(bi->dparams), dl + " (gamma, beta)", m);
          in.push_back({"dparams", cst(bi->dparams)});
          giveInput(KernelKind::BNBackData, in, ba, actInBN ? gr.act : Act(), pooled);
          break;
        }
        case OpKind::Add:
          for (int i : head.inputs)
            if (needsGrad(i)) contrib[i].push_back(dPre);
          break;
        case OpKind::MaxPool:
          if (foldedPools.count(m)) {
            if (needsGrad(xin)) {
              contrib[xin].push_back(dPre);
              pooledGrad[xin] = m;
            }
          } else {
            giveInput(KernelKind::MaxPoolBack, {{"dy", act(dPre)}, {"x", act(x)}}, head.attrs);
          }
          break;
        case OpKind::AvgPool: giveInput(KernelKind::AvgPoolBack, {{"dy", act(dPre)}}, head.attrs); break;
        case OpKind::AdaptiveAvgPool: giveInput(KernelKind::AdaptiveAvgBack, {{"dy", act(dPre)}}, head.attrs); break;
        case OpKind::Softmax: giveInput(KernelKind::SoftmaxBack, {{"dy", act(dPre)}, {"y", act(gr.out)}}, head.attrs); break;
        case OpKind::LRN: giveInput(KernelKind::LrnBack, {{"dy", act(dPre)}, {"x", act(x)}}, head.attrs); break;
        case OpKind::Dropout: giveInput(KernelKind::DropoutBack, {{"dy", act(dPre)}, {"seed", cst(gr.seed)}}, head.attrs); break;
        case OpKind::Concat: {
          int64_t start = 0;
          for (int i : head.inputs) {
            const Dims& s = g.nodes[i].shape;
            if (needsGrad(i)) {
              Attrs a;
              a.size = start;
              int dx = newTensor(s, "d" + g.nodes[i].name);
              call(spec(KernelKind::Slice, head.shape, s, a), {{"dy", act(dPre)}}, act(dx), dl + " (slice)", m);
              contrib[i].push_back(dx);
            }
            start += s[0];
          }
          break;
        }
        default: break;
      }
    }
  }
};

}  // namespace

bool buildTrainingPlan(const Graph& g, TrainPlan& tp, std::string& err) {
  const Node& outNode = g.nodes[g.output];
  if (outNode.shape.size() != 1) {
    err = "the network's output " + dimsStr(outNode.shape) + " is not a vector of class scores; training needs [K] (end with flatten and linear)";
    return false;
  }
  TBuilder b(g, tp);
  if (!b.forward(err)) return false;
  Plan& p = tp.plan;
  int logits = b.tensorOf[g.output];
  int64_t K = outNode.shape[0];
  tp.labels = b.newTensor({1}, "labels");
  tp.loss = b.newTensor({1}, "loss");
  ConstTensor e;
  e.kind = ConstTensor::Eps;
  e.shape = {1};
  tp.eps = b.newConst(e);
  NamedArgs ce{{"logits", b.act(logits)}, {"labels", b.act(tp.labels)}, {"eps", b.cst(tp.eps)}};
  b.call(b.spec(KernelKind::CELoss, {K}, {1}), ce, b.act(tp.loss), "loss", g.output);
  tp.forwardCalls = (int)p.calls.size();
  int dlogits = b.newTensor({K}, "dlogits");
  b.call(b.spec(KernelKind::CEGrad, {K}, {K}), ce, b.act(dlogits), "dloss", g.output);
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
