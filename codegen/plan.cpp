// plan.cpp: from the graph IR to an inference plan.
//
// 1. Count consumers of every node (the graph output counts as one).
// 2. Walk nodes in order; each op's step is in its file (ops/<op>.cpp, through opPlanEntry). A conv
//    starts a group and absorbs, while each has a single consumer, a following batchnorm (folded
//    into the conv's weights at load), an add (as a fused residual input) and an activation. A
//    linear absorbs an activation. A lone batchnorm becomes a per-channel affine kernel, a lone add
//    an add kernel; flatten and dropout become views of their input's storage.
// 3. A group runs at the position of its last node, so operands it reads (a residual computed by
//    a projection shortcut after the main path) already exist.
// 4. Identical kernel specs are stored once: ResNet's repeated blocks share compiled code.
// 5. Storage slots get live intervals over the kernel sequence; a greedy best-fit places larger
//    slots first at the lowest offset that overlaps no live slot. Offsets are rounded up to
//    kSlotAlign floats so every tensor starts on a 128-byte boundary at any batch size: two cache
//    lines on the CPU, and the base-address alignment OpenCL requires of the sub-buffers that the
//    GPU executor hands each kernel (pocl: 1024 bits; with 16 floats, odd batches failed).
#include "plan.h"

#include "common/recipe.h"

#include "plan_builder.h"

#include "common/packed_layout.h"
#include "common/winograd_weights.h"
#include "gpu_schedule.h"
#include "ops/registry.h"

#include <algorithm>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace cnnc::codegen {

InferenceBuilder::InferenceBuilder(const Graph& graph) : g(graph) {
  consumers.assign(g.nodes.size(), 0);
  users.resize(g.nodes.size());
  tensorOf.assign(g.nodes.size(), -1);
  done.assign(g.nodes.size(), false);
  for (const auto& n : g.nodes)
    for (int i : n.inputs) { consumers[i]++; users[i].push_back(n.id); }
  consumers[g.output]++;
}

int InferenceBuilder::soleUser(int id) const { return consumers[id] == 1 && users[id].size() == 1 ? users[id][0] : -1; }

int InferenceBuilder::param(const Node& n, ParamRole role) const {
  for (int i : n.params) if (g.params[i].role == role) return i;
  return -1;
}

int InferenceBuilder::newConst(ConstTensor c) {
  p.consts.push_back(c);
  return (int)p.consts.size() - 1;
}

int InferenceBuilder::constParam(int paramIdx) {
  ConstTensor c;
  c.kind = ConstTensor::Param;
  c.param = paramIdx;
  c.shape = g.params[paramIdx].shape;
  return newConst(c);
}

int InferenceBuilder::zeros(int64_t n) {
  ConstTensor z;
  z.kind = ConstTensor::Zeros;
  z.shape = {n};
  return newConst(z);
}

KernelSpec InferenceBuilder::specOf(const Node& n) const {
  KernelSpec s;
  s.in = n.inputs.empty() ? n.shape : g.nodes[n.inputs[0]].shape;
  s.out = n.shape;
  s.attrs = n.attrs;
  return s;
}

void InferenceBuilder::emit(KernelSpec s, const NamedArgs& named, const Node& last, const std::string& label) {
  std::vector<KernelArg> args = bindArgs(s, named);
  int t = newTensor(last.shape, last.name);
  tensorOf[last.id] = t;
  args.push_back({false, t});
  p.calls.push_back({internSpec(p, std::move(s), specIndex), std::move(args), label, last.id});
}

void InferenceBuilder::emitTo(KernelSpec s, const NamedArgs& named, int tensor, const std::string& label, int node) {
  std::vector<KernelArg> args = bindArgs(s, named);
  args.push_back({false, tensor});
  p.calls.push_back({internSpec(p, std::move(s), specIndex), std::move(args), label, node});
}

int InferenceBuilder::absorbAct(int cur, KernelSpec& s, std::string& label) {
  int u = soleUser(cur);
  if (u >= 0 && g.nodes[u].op == OpKind::Activation) {
    s.act = actOf(g.nodes[u]);
    label += "+" + g.nodes[u].name;
    done[u] = true;
    return u;
  }
  return cur;
}

void InferenceBuilder::single(const Node& n, KernelKind k) {
  KernelSpec s = specOf(n);
  s.kind = k;
  emit(s, {{"input", act(n.inputs[0])}}, n, n.name);
}

void InferenceBuilder::view(const Node& n) { tensorOf[n.id] = newTensor(n.shape, n.name, p.acts[tensorOf[n.inputs[0]]].storage); }

void InferenceBuilder::deferTo(int tail, int head, std::function<void()> emit) {
  if (tail == head) emit();
  else deferred[tail] = std::move(emit);
}

void InferenceBuilder::run() {
  for (const auto& n : g.nodes) {
    auto d = deferred.find(n.id);
    if (d != deferred.end()) {
      d->second();
      deferred.erase(d);
    }
    if (done[n.id]) continue;
    done[n.id] = true;
    if (n.op == OpKind::Input) {
      tensorOf[n.id] = p.input = newTensor(n.shape, n.name);
    } else if (n.op == OpKind::Flatten) {
      view(n);
    } else {
      opPlanEntry(n.op).infer(*this, n);  // the op's file (ops/registry.cpp)
    }
  }
  p.output = tensorOf[g.output];
}

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

Dims packedWeightDims(const KernelSpec& s, const Dims& oihw) {
  if (weightPacking(s) == plan_schema::ConstPack::Winograd) return winogradWeightShape(oihw.at(0), oihw.at(1));
  return packedWeightShape(oihw, packedBlock(s.schedule));
}

void packConvWeights(Plan& p) {
  for (auto& s : p.specs) s.packedWeights = takesPackedWeights(s);
  std::vector<ConstTensor> unpacked = p.consts;
  for (auto& c : p.calls)
    if (p.specs[c.spec].packedWeights) {
      const KernelSpec& s = p.specs[c.spec];
      int& id = c.args.at(argIndex(s, "weight")).id;
      Dims shape = packedWeightDims(s, unpacked[id].shape);
      plan_schema::ConstPack how = weightPacking(s);
      if (p.consts[id].pack != plan_schema::ConstPack::None) {
        // A weight shared by two calls is packed once where their kernels read it alike; a kernel
        // that reads it otherwise gets its own copy.
        if (p.consts[id].pack == how && p.consts[id].shape == shape) continue;
        p.consts.push_back(unpacked[id]);
        unpacked.push_back(unpacked[id]);
        id = (int)p.consts.size() - 1;
      }
      p.consts[id].pack = how;
      p.consts[id].shape = shape;
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
  InferenceBuilder b(g);
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

nlohmann::json planJsonObject(const Plan& p, const Graph& g, const SourceManager& sm, const std::string& target, const std::string& noTraining) {
  using nlohmann::json;
  using namespace plan_schema;
  json j;
  j[key::format] = kFormat;
  j[key::net] = g.name;
  j[key::source] = g.file;
  j[key::target] = target;
  j[key::mean] = g.mean;
  j[key::std_] = g.std;
  json recipe = json::array();
  for (const recipe::Value& e : g.recipe) {
    json v;
    switch (recipe::find(e.key)->kind) {
      case recipe::Kind::Int: v = (int64_t)e.num; break;
      case recipe::Kind::Float: v = e.num; break;
      case recipe::Kind::Bool: v = e.flag; break;
      case recipe::Kind::String: v = e.text; break;
      case recipe::Kind::IntList: v = e.list; break;
    }
    recipe.push_back({{key::key_, e.key}, {key::value, v}, {key::where, e.where}});
  }
  j[key::recipe] = recipe;
  if (!noTraining.empty()) j[key::no_training] = noTraining;
  j[key::arena_per_image] = p.arenaPerImage;
  j[key::input] = p.input;
  j[key::output] = p.output;
  json params = json::array();
  for (const auto& prm : g.params) {
    const Node& n = g.nodes[prm.node];
    int64_t fanIn = 1;
    if (n.op == OpKind::Conv || n.op == OpKind::ConvTranspose) fanIn = g.params[n.params[0]].shape[1] * n.attrs.kernel[0] * n.attrs.kernel[1];
    else if (n.op == OpKind::Linear) fanIn = g.params[n.params[0]].shape[1];
    const char* role = prm.role == ParamRole::Weight ? kRoleWeight : prm.role == ParamRole::Bias ? kRoleBias
                     : prm.role == ParamRole::RunningMean ? kRoleRunningMean : prm.role == ParamRole::RunningVar ? kRoleRunningVar : kRoleNumBatchesTracked;
    params.push_back({{key::name, prm.name}, {key::shape, prm.shape}, {key::dtype, prm.isInt64() ? kDTypeI64 : kDTypeF32}, {key::role, role},
                      {key::op, opName(n.op)}, {key::fan_in, fanIn}, {key::where, sm.where(n.loc)}});
    if (prm.hasFill) params.back()[key::fill] = prm.fill;
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
                      {key::eps, c.eps}, {key::pack, constPackName(c.pack)}});
  j[key::consts] = consts;
  json kernels = json::array();
  for (const auto& s : p.specs) kernels.push_back({{key::fn, s.functionName()}, {key::signature, s.signature()}, {key::flops, kernelFlops(s)}});
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

std::string planToJson(const Plan& p, const Graph& g, const SourceManager& sm, const std::string& target, const std::string& noTraining) {
  return planJsonObject(p, g, sm, target, noTraining).dump();
}

}  // namespace cnnc::codegen
