// plan.cpp: from the graph IR to an inference plan.
//
// 1. Count consumers of every node (the graph output counts as one).
// 2. Walk nodes in order. A conv starts a group and absorbs, while each has a single consumer,
//    a following batchnorm (folded into the conv's weights at load), an add (as a fused residual
//    input) and an activation. A linear absorbs an activation. A lone batchnorm becomes a
//    per-channel affine kernel, a lone add an add kernel; flatten, dropout and identity become
//    views of their input's storage.
// 3. A group runs at the position of its last node, so operands it reads (a residual computed by
//    a projection shortcut after the main path) already exist.
// 4. Identical kernel specs are stored once: ResNet's repeated blocks share compiled code.
// 5. Storage slots get live intervals over the kernel sequence; a greedy best-fit places larger
//    slots first at the lowest offset that overlaps no live slot. Offsets are rounded up to
//    kSlotAlign floats so every tensor starts on a 128-byte boundary at any batch size: two cache
//    lines on the CPU, and the base-address alignment OpenCL requires of the sub-buffers that the
//    GPU executor hands each kernel (pocl: 1024 bits; with 16 floats, odd batches failed).
#include "plan.h"

#include "common/packed_layout.h"
#include "gpu_schedule.h"
#include "ops/registry.h"

#include <algorithm>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace cnnc::codegen {

namespace {

struct Builder {
  const Graph& g;
  Plan p;
  std::vector<int> consumers;
  std::vector<std::vector<int>> users;
  std::vector<int> tensorOf;  // node -> ActTensor
  std::map<std::string, int> specIndex;
  std::map<int, std::function<void()>> deferred;  // tail node -> emission of its group

  explicit Builder(const Graph& graph) : g(graph) {
    consumers.assign(g.nodes.size(), 0);
    users.resize(g.nodes.size());
    tensorOf.assign(g.nodes.size(), -1);
    for (const auto& n : g.nodes)
      for (int i : n.inputs) { consumers[i]++; users[i].push_back(n.id); }
    consumers[g.output]++;
  }

  // The single consumer of node `id`, or -1.
  int soleUser(int id) const { return consumers[id] == 1 && users[id].size() == 1 ? users[id][0] : -1; }

  int newTensor(const Dims& shape, const std::string& name, int storage = -1) { return addActTensor(p, shape, name, storage); }

  int param(const Node& n, ParamRole role) const {
    for (int i : n.params) if (g.params[i].role == role) return i;
    return -1;
  }

  int constParam(int paramIdx) {
    ConstTensor c;
    c.kind = ConstTensor::Param;
    c.param = paramIdx;
    c.shape = g.params[paramIdx].shape;
    p.consts.push_back(c);
    return (int)p.consts.size() - 1;
  }

  // A bias of zeros, for convs and linears declared without one.
  int zeros(int64_t n) {
    ConstTensor z;
    z.kind = ConstTensor::Zeros;
    z.shape = {n};
    p.consts.push_back(z);
    return (int)p.consts.size() - 1;
  }

  int addSpec(KernelSpec s) { return internSpec(p, std::move(s), specIndex); }


  void emit(KernelSpec s, const NamedArgs& named, const Node& last, const std::string& label) {
    std::vector<KernelArg> args = bindArgs(s, named);
    int t = newTensor(last.shape, last.name);
    tensorOf[last.id] = t;
    args.push_back({false, t});
    p.calls.push_back({addSpec(std::move(s)), std::move(args), label, last.id});
  }

  KernelArg act(int node) const { return {false, tensorOf[node]}; }

  // Absorbs a single-consumer activation after `cur`; returns the new tail.
  int absorbAct(int cur, KernelSpec& s, std::string& label, std::vector<bool>& done) {
    int u = soleUser(cur);
    if (u >= 0 && g.nodes[u].op == OpKind::Activation) {
      s.act = actOf(g.nodes[u]);
      label += "+" + g.nodes[u].name;
      done[u] = true;
      return u;
    }
    return cur;
  }

  void run() {
    std::vector<bool> done(g.nodes.size(), false);
    for (const auto& n : g.nodes) {
      auto d = deferred.find(n.id);
      if (d != deferred.end()) d->second();
      if (done[n.id]) continue;
      done[n.id] = true;
      const Dims& in = n.inputs.empty() ? n.shape : g.nodes[n.inputs[0]].shape;
      KernelSpec s;
      s.in = in;
      s.out = n.shape;
      s.attrs = n.attrs;
      std::string label = n.name;
      switch (n.op) {
        case OpKind::Input:
          tensorOf[n.id] = newTensor(n.shape, n.name);
          p.input = tensorOf[n.id];
          break;
        case OpKind::Flatten:
        case OpKind::Dropout:  // inference: identity
          tensorOf[n.id] = newTensor(n.shape, n.name, p.acts[tensorOf[n.inputs[0]]].storage);
          break;
        case OpKind::Conv: {
          s.kind = KernelKind::Conv;
          int w = param(n, ParamRole::Weight), b = param(n, ParamRole::Bias);
          int cur = n.id;
          int wc, bc;
          int u = soleUser(cur);
          if (u >= 0 && g.nodes[u].op == OpKind::BatchNorm) {
            const Node& bn = g.nodes[u];
            ConstTensor fw;
            fw.kind = ConstTensor::FoldConvBN;
            fw.shape = g.params[w].shape;
            fw.convW = w; fw.convB = b;
            fw.bnW = param(bn, ParamRole::Weight); fw.bnB = param(bn, ParamRole::Bias);
            fw.bnMean = param(bn, ParamRole::RunningMean); fw.bnVar = param(bn, ParamRole::RunningVar);
            fw.eps = bn.attrs.eps;
            ConstTensor fb = fw;
            fb.foldBias = true;
            fb.shape = {n.attrs.out};
            p.consts.push_back(fw);
            wc = (int)p.consts.size() - 1;
            p.consts.push_back(fb);
            bc = (int)p.consts.size() - 1;
            done[u] = true;
            label += "+" + bn.name;
            cur = u;
          } else {
            wc = constParam(w);
            if (b >= 0) bc = constParam(b);
            else bc = zeros(n.attrs.out);
          }
          NamedArgs args{{"input", act(n.inputs[0])}, {"weight", {true, wc}}, {"bias", {true, bc}}};
          u = soleUser(cur);
          if (u >= 0 && !done[u] && g.nodes[u].op == OpKind::Add && g.nodes[u].inputs.size() == 2) {  // one conv per add
            const Node& add = g.nodes[u];
            int other = add.inputs[0] == cur ? add.inputs[1] : add.inputs[0];
            if (other != cur) {  // add(x, x) stays a separate kernel
              s.residual = true;
              s.extraIns = {g.nodes[other].shape};
              args.push_back({"residual", {false, -1 - other}});  // resolved below, at the group's tail
              done[u] = true;
              label += "+" + add.name;
              cur = u;
            }
          }
          cur = absorbAct(cur, s, label, done);
          // The group runs at its tail, where a residual operand computed after the conv (a
          // projection shortcut) exists.
          int tail = cur;
          deferred[tail] = [this, s, args, tail, label]() mutable {
            for (auto& a : args)
              if (!a.second.isConst && a.second.id < 0) a.second.id = tensorOf[-1 - a.second.id];
            s.out = g.nodes[tail].shape;
            emit(s, args, g.nodes[tail], label);
          };
          if (tail == n.id) {
            deferred[tail]();
            deferred.erase(tail);
          }
          break;
        }
        case OpKind::Linear: {
          s.kind = KernelKind::Linear;
          int w = param(n, ParamRole::Weight), b = param(n, ParamRole::Bias);
          int bc;
          if (b >= 0) bc = constParam(b);
          else bc = zeros(n.attrs.out);
          NamedArgs args{{"input", act(n.inputs[0])}, {"weight", {true, constParam(w)}}, {"bias", {true, bc}}};
          int cur = absorbAct(n.id, s, label, done);
          emit(s, args, g.nodes[cur], label);
          break;
        }
        case OpKind::BatchNorm: {
          s.kind = KernelKind::Affine;
          ConstTensor sc;
          sc.kind = ConstTensor::BNScale;
          sc.shape = {n.shape[0]};
          sc.bnW = param(n, ParamRole::Weight); sc.bnB = param(n, ParamRole::Bias);
          sc.bnMean = param(n, ParamRole::RunningMean); sc.bnVar = param(n, ParamRole::RunningVar);
          sc.eps = n.attrs.eps;
          ConstTensor sh = sc;
          sh.kind = ConstTensor::BNShift;
          p.consts.push_back(sc);
          p.consts.push_back(sh);
          int ci = (int)p.consts.size();
          NamedArgs args{{"input", act(n.inputs[0])}, {"scale", {true, ci - 2}}, {"shift", {true, ci - 1}}};
          int cur = absorbAct(n.id, s, label, done);
          emit(s, args, g.nodes[cur], label);
          break;
        }
        case OpKind::Add: {
          // Sum of N inputs as a chain of two-input adds; the activation goes on the last.
          int acc = n.inputs[0];
          for (size_t i = 1; i < n.inputs.size(); ++i) {
            KernelSpec a;
            a.kind = KernelKind::Add;
            a.in = n.shape;
            a.extraIns = {n.shape};
            a.out = n.shape;
            NamedArgs named{{"a", act(acc)}, {"b", act(n.inputs[i])}};
            if (i + 1 < n.inputs.size()) {
              std::vector<KernelArg> args = bindArgs(a, named);
              int t = newTensor(n.shape, n.name);
              args.push_back({false, t});
              p.calls.push_back({addSpec(a), args, label, n.id});
              tensorOf[n.id] = t;
              acc = n.id;
            } else {
              int cur = absorbAct(n.id, a, label, done);
              emit(a, named, g.nodes[cur], label);
            }
          }
          break;
        }
        case OpKind::Activation:
          s.kind = KernelKind::Activation;
          s.act = actOf(n);
          emit(s, {{"a", act(n.inputs[0])}}, n, label);
          break;
        case OpKind::MaxPool:
        case OpKind::AvgPool:
        case OpKind::AdaptiveAvgPool:
        case OpKind::LRN:
        case OpKind::Softmax: {
          s.kind = n.op == OpKind::MaxPool ? KernelKind::MaxPool : n.op == OpKind::AvgPool ? KernelKind::AvgPool
                 : n.op == OpKind::AdaptiveAvgPool ? KernelKind::AdaptiveAvgPool : n.op == OpKind::LRN ? KernelKind::LRN : KernelKind::Softmax;
          emit(s, {{"input", act(n.inputs[0])}}, n, label);
          break;
        }
        case OpKind::Concat: {
          s.kind = KernelKind::Concat;
          NamedArgs args;
          for (size_t i = 0; i < n.inputs.size(); ++i) {
            args.push_back({"in" + std::to_string(i), act(n.inputs[i])});
            if (i) s.extraIns.push_back(g.nodes[n.inputs[i]].shape);
          }
          emit(s, args, n, label);
          break;
        }
      }
    }
    p.output = tensorOf[g.output];
  }

};

}  // namespace

std::vector<KernelArg> bindArgs(const KernelSpec& s, const NamedArgs& named) {
  ArgNames names = kernelArgNames(s);
  std::vector<KernelArg> out;
  for (const auto& n : names) {
    auto it = std::find_if(named.begin(), named.end(), [&](const auto& a) { return a.first == n; });
    if (it == named.end()) throw std::logic_error("plan: kernel " + s.signature() + " needs input '" + n + "', which its call does not give");
    out.push_back(it->second);
  }
  return out;
}

int argIndex(const KernelSpec& s, const std::string& name) {
  ArgNames names = kernelArgNames(s);
  auto it = std::find(names.begin(), names.end(), name);
  return it == names.end() ? -1 : (int)(it - names.begin());
}

int addActTensor(Plan& p, const Dims& shape, const std::string& name, int storage) {
  if (storage < 0) {
    p.storages.push_back({numel(shape), 0, 0, 0});
    storage = (int)p.storages.size() - 1;
  }
  p.acts.push_back({shape, storage, name});
  return (int)p.acts.size() - 1;
}

int internSpec(Plan& p, KernelSpec s, std::map<std::string, int>& index) {
  s.schedule = defaultSchedule(s);
  std::string sig = s.signature();
  auto it = index.find(sig);
  if (it != index.end()) return it->second;
  p.specs.push_back(std::move(s));
  return index[sig] = (int)p.specs.size() - 1;
}

void applyTargetSchedules(Plan& p, const std::string& target) {
  int lanes = lanesOf(target);
  bool gpu = isGpuTarget(target);
  for (auto& s : p.specs) s.schedule = gpu ? gpuDefaultSchedule() : defaultSchedule(s, lanes);
}

void packConvWeights(Plan& p) {
  for (auto& s : p.specs) s.packedWeights = takesPackedWeights(s);
  for (const auto& c : p.calls)
    if (p.specs[c.spec].packedWeights) {
      ConstTensor& w = p.consts[c.args.at(argIndex(p.specs[c.spec], "weight")).id];
      if (w.pack) continue;  // a weight shared by two calls is packed once
      w.pack = true;
      w.shape = packedWeightShape(w.shape, packedBlock(p.specs[c.spec].schedule));
    }
}

void planMemory(Plan& p) {
  // Live intervals: a storage lives from the kernel that writes it to the last kernel reading it.
  for (auto& s : p.storages) { s.firstUse = INT32_MAX; s.lastUse = -1; }
  p.storages[p.acts[p.input].storage].firstUse = -1;
  for (int k = 0; k < (int)p.calls.size(); ++k)
    for (size_t a = 0; a < p.calls[k].args.size(); ++a) {
      const KernelArg& arg = p.calls[k].args[a];
      if (arg.isConst) continue;
      Storage& s = p.storages[p.acts[arg.id].storage];
      s.firstUse = std::min(s.firstUse, k);
      s.lastUse = std::max(s.lastUse, k);
    }
  Storage& out = p.storages[p.acts[p.output].storage];
  out.lastUse = (int)p.calls.size();
  for (int t : p.pinned) {
    p.storages[p.acts[t].storage].firstUse = -1;
    p.storages[p.acts[t].storage].lastUse = (int)p.calls.size();
  }
  std::vector<int> order(p.storages.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = (int)i;
  std::sort(order.begin(), order.end(), [&](int a, int b) { return p.storages[a].size > p.storages[b].size; });
  std::vector<int> placed;
  int64_t top = 0;
  const int64_t kSlotAlign = 32;
  auto rounded = [&](int64_t n) { return (n + kSlotAlign - 1) / kSlotAlign * kSlotAlign; };
  for (int i : order) {
    Storage& s = p.storages[i];
    int64_t size = rounded(s.size);
    // Candidate offsets: 0 and the end of every placed slot whose lifetime overlaps.
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (int j : placed) {
      const Storage& o = p.storages[j];
      if (o.lastUse < s.firstUse || s.lastUse < o.firstUse) continue;
      busy.push_back({o.offset, o.offset + rounded(o.size)});
    }
    std::sort(busy.begin(), busy.end());
    int64_t off = 0;
    for (auto& [b, e] : busy) {
      if (off + size <= b) break;
      off = std::max(off, e);
    }
    s.offset = off;
    top = std::max(top, off + size);
    placed.push_back(i);
  }
  p.arenaPerImage = top;
}

std::string verifyPlan(const Plan& p) {
  // Live intervals recomputed from the calls, independently of planMemory's bookkeeping. The input,
  // the output and pinned tensors are touched by the runtime around the calls: live throughout.
  const int end = (int)p.calls.size();
  std::vector<std::pair<int, int>> live(p.storages.size(), {INT32_MAX, -1});
  for (int k = 0; k < end; ++k)
    for (const auto& a : p.calls[k].args)
      if (!a.isConst) {
        auto& l = live[p.acts[a.id].storage];
        l.first = std::min(l.first, k);
        l.second = std::max(l.second, k);
      }
  auto widen = [&](int t, bool before, bool after) {
    auto& l = live[p.acts[t].storage];
    if (before) l.first = -1;
    if (after) l.second = end;
    l.second = std::max(l.second, l.first);
  };
  widen(p.input, true, false);
  widen(p.output, false, true);
  for (int t : p.pinned) widen(t, true, true);
  for (size_t i = 0; i < p.storages.size(); ++i)
    for (size_t j = i + 1; j < p.storages.size(); ++j) {
      const Storage &a = p.storages[i], &b = p.storages[j];
      auto sa = live[i], sb = live[j];
      if (sa.second < 0 || sb.second < 0 || !a.size || !b.size) continue;  // never touched
      bool timeOverlap = !(sa.second < sb.first || sb.second < sa.first);
      bool spaceOverlap = a.offset < b.offset + b.size && b.offset < a.offset + a.size;
      if (timeOverlap && spaceOverlap)
        return "storages " + std::to_string(i) + " and " + std::to_string(j) + " are live together ([" + std::to_string(sa.first) + "," +
               std::to_string(sa.second) + "] and [" + std::to_string(sb.first) + "," + std::to_string(sb.second) + "]) and share arena space";
    }
  return "";
}

Plan buildInferencePlan(const Graph& g) {
  Builder b(g);
  b.run();
  planMemory(b.p);
  return std::move(b.p);
}

std::string planToText(const Plan& p, const Graph& g) {
  std::string s = "plan " + g.name + ": " + std::to_string(p.specs.size()) + " kernels, " + std::to_string(p.calls.size()) + " calls, arena " +
                  std::to_string(p.arenaPerImage) + " floats per image\n";
  for (const auto& c : p.calls) {
    const KernelArg& o = c.args.back();
    std::string where = o.isConst ? "const " + std::to_string(o.id)
                                  : dimsStr(p.acts[o.id].shape) + " @" + std::to_string(p.storages[p.acts[o.id].storage].offset);
    s += "  " + c.label + " = " + p.specs[c.spec].functionName() + " -> " + where + "\n";
    s += "    " + p.specs[c.spec].signature() + "\n";
  }
  return s;
}

nlohmann::json planJsonObject(const Plan& p, const Graph& g, const SourceManager& sm, const std::string& target) {
  using nlohmann::json;
  using namespace plan_schema;
  json j;
  j[key::format] = kFormat;
  j[key::net] = g.name;
  j[key::source] = g.file;
  j[key::target] = target;
  j[key::mean] = g.mean;
  j[key::std_] = g.std;
  j[key::arena_per_image] = p.arenaPerImage;
  j[key::input] = p.input;
  j[key::output] = p.output;
  json params = json::array();
  for (const auto& prm : g.params) {
    const Node& n = g.nodes[prm.node];
    int64_t fanIn = 1;
    if (n.op == OpKind::Conv) fanIn = g.params[n.params[0]].shape[1] * n.attrs.kernel[0] * n.attrs.kernel[1];
    else if (n.op == OpKind::Linear) fanIn = g.params[n.params[0]].shape[1];
    const char* role = prm.role == ParamRole::Weight ? kRoleWeight : prm.role == ParamRole::Bias ? kRoleBias
                     : prm.role == ParamRole::RunningMean ? kRoleRunningMean : prm.role == ParamRole::RunningVar ? kRoleRunningVar : kRoleNumBatchesTracked;
    params.push_back({{key::name, prm.name}, {key::shape, prm.shape}, {key::dtype, prm.isInt64() ? kDTypeI64 : kDTypeF32}, {key::role, role},
                      {key::op, opName(n.op)}, {key::fan_in, fanIn}, {key::where, sm.where(n.loc)}});
  }
  j[key::params] = params;
  json acts = json::array();
  for (const auto& a : p.acts) acts.push_back({{key::shape, a.shape}, {key::storage, a.storage}, {key::name, a.name}});
  j[key::acts] = acts;
  json st = json::array();
  for (const auto& s : p.storages) st.push_back({{key::offset, s.offset}, {key::size, s.size}});
  j[key::storages] = st;
  json consts = json::array();
  for (const auto& c : p.consts)
    consts.push_back({{key::kind, constKindName(c.kind, c.foldBias)}, {key::shape, c.shape}, {key::param, c.param}, {key::conv_w, c.convW},
                      {key::conv_b, c.convB}, {key::bn_w, c.bnW}, {key::bn_b, c.bnB}, {key::bn_mean, c.bnMean}, {key::bn_var, c.bnVar},
                      {key::eps, c.eps}, {key::pack, c.pack}});
  j[key::consts] = consts;
  json kernels = json::array();
  for (const auto& s : p.specs) kernels.push_back({{key::fn, s.functionName()}, {key::signature, s.signature()}});
  j[key::kernels] = kernels;
  json calls = json::array();
  for (const auto& c : p.calls) {
    json args = json::array();
    for (const auto& a : c.args) args.push_back({{key::is_const, a.isConst}, {key::id, a.id}});
    calls.push_back({{key::kernel, c.spec}, {key::args, args}, {key::label, c.label}});
  }
  j[key::calls] = calls;
  return j;
}

std::string planToJson(const Plan& p, const Graph& g, const SourceManager& sm, const std::string& target) {
  return planJsonObject(p, g, sm, target).dump();
}

}  // namespace cnnc::codegen
