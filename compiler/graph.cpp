// graph.cpp: graph IR helpers and its stable text form (`cnnc --emit=graph`).
#include "graph.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

namespace cnnc {

const char* opName(OpKind k) {
  switch (k) {
    case OpKind::Input: return "input";
    case OpKind::Conv: return "conv";
    case OpKind::Linear: return "linear";
    case OpKind::BatchNorm: return "batchnorm";
    case OpKind::Activation: return "activation";
    case OpKind::MaxPool: return "maxpool";
    case OpKind::AvgPool: return "avgpool";
    case OpKind::AdaptiveAvgPool: return "adaptiveavgpool";
    case OpKind::Flatten: return "flatten";
    case OpKind::Dropout: return "dropout";
    case OpKind::LRN: return "lrn";
    case OpKind::Softmax: return "softmax";
    case OpKind::Concat: return "concat";
    case OpKind::Add: return "add";
    case OpKind::Mul: return "mul";
    case OpKind::Scale: return "scale";
    case OpKind::PReLU: return "prelu";
    case OpKind::Chunk: return "chunk";
    case OpKind::ChannelShuffle: return "channelshuffle";
    case OpKind::Upsample: return "upsample";
    case OpKind::ConvTranspose: return "convtranspose";
    case OpKind::Pad: return "pad";
    case OpKind::GroupNorm: return "groupnorm";
    case OpKind::AdaptiveMaxPool: return "adaptivemaxpool";
  }
  return "?";
}

std::string nodeOpName(const Node& n) {
  if (n.op == OpKind::Activation) return n.attrs.act.name;
  if (n.op == OpKind::Dropout && n.attrs.dropUnit != Attrs::DropUnit::Element) return n.attrs.dropUnit == Attrs::DropUnit::Channel ? "dropout2d" : "droppath";
  return opName(n.op);
}

int64_t ParamInfo::numel() const { return cnnc::numel(shape); }

int64_t Graph::totalParams() const {
  int64_t n = 0;
  for (const auto& p : params) if (p.trainable()) n += p.numel();
  return n;
}

int64_t Graph::bufferElems() const {
  int64_t n = 0;
  for (const auto& p : params)
    if (p.role == ParamRole::RunningMean || p.role == ParamRole::RunningVar) n += p.numel();
  return n;
}

int64_t Graph::totalMacs() const {
  int64_t n = 0;
  for (const auto& nd : nodes) n += nd.macs;
  return n;
}

int64_t Graph::activationBytes() const {
  int64_t n = 0;
  for (const auto& nd : nodes) n += numel(nd.shape) * 4;
  return n;
}

std::string withCommas(int64_t v) {
  std::string s = std::to_string(v < 0 ? -v : v);
  std::string out;
  int c = 0;
  for (int i = (int)s.size() - 1; i >= 0; --i) {
    out.insert(out.begin(), s[i]);
    if (++c % 3 == 0 && i > 0) out.insert(out.begin(), ',');
  }
  return v < 0 ? "-" + out : out;
}

static std::string fmtDouble(double v) {
  std::ostringstream ss;
  ss << v;
  return ss.str();
}

std::string Activation::str() const {
  if (none()) return "none";
  std::string s = name;
  for (size_t i = 0; i < args.size(); ++i) {
    char b[64];
    snprintf(b, sizeof b, "%s%s=%.9g", i ? "," : "(", args[i].first.c_str(), args[i].second);
    s += b;
  }
  return args.empty() ? s : s + ")";
}

static std::string pair(const int64_t* p) {
  return p[0] == p[1] ? std::to_string(p[0]) : "[" + std::to_string(p[0]) + "," + std::to_string(p[1]) + "]";
}

// The attributes that matter for an op, in a fixed order.
static std::string attrStr(const Node& n) {
  const Attrs& a = n.attrs;
  std::string s;
  auto add = [&](const std::string& k, const std::string& v) { s += (s.empty() ? "" : " ") + k + "=" + v; };
  switch (n.op) {
    case OpKind::Conv:
      add("out", std::to_string(a.out)); add("kernel", pair(a.kernel)); add("stride", pair(a.stride));
      if (a.padEnd[0] == a.pad[0] && a.padEnd[1] == a.pad[1]) add("padding", pair(a.pad));
      else add("padding", "[" + std::to_string(a.pad[0]) + "," + std::to_string(a.padEnd[0]) + "," + std::to_string(a.pad[1]) + "," + std::to_string(a.padEnd[1]) + "]");
      add("dilation", pair(a.dilation)); add("groups", std::to_string(a.groups));
      add("bias", a.bias ? "true" : "false");
      break;
    case OpKind::Linear:
      add("out", std::to_string(a.out)); add("bias", a.bias ? "true" : "false");
      break;
    case OpKind::BatchNorm:
      add("eps", fmtDouble(a.eps)); add("momentum", fmtDouble(a.momentum));
      break;
    case OpKind::MaxPool:
    case OpKind::AvgPool:
      add("kernel", pair(a.kernel)); add("stride", pair(a.stride)); add("padding", pair(a.pad));
      if (n.op == OpKind::MaxPool) add("dilation", pair(a.dilation));
      add("ceil", a.ceil ? "true" : "false");
      if (n.op == OpKind::AvgPool) add("count_include_pad", a.countIncludePad ? "true" : "false");
      break;
    case OpKind::AdaptiveAvgPool:
    case OpKind::AdaptiveMaxPool: add("out", pair(a.outHW)); break;
    case OpKind::Dropout: add("p", fmtDouble(a.p)); break;  // its unit is in the op's name (nodeOpName)
    case OpKind::Scale: add("init", fmtDouble(a.init)); break;
    case OpKind::Chunk: add("start", std::to_string(a.size)); break;
    case OpKind::ChannelShuffle: add("groups", std::to_string(a.groups)); break;
    case OpKind::Upsample:
      add("mode", a.resample == Attrs::Resample::Bilinear ? "bilinear" : "nearest");
      if (a.resample == Attrs::Resample::Bilinear) add("align_corners", a.alignCorners ? "true" : "false");
      if (a.upScale[0] > 0) add("scale", fmtDouble(1 / a.upScale[0]) + "x" + fmtDouble(1 / a.upScale[1]));
      break;
    case OpKind::ConvTranspose:
      add("out", std::to_string(a.out)); add("kernel", pair(a.kernel)); add("stride", pair(a.stride));
      add("padding", pair(a.pad)); add("output_padding", pair(a.outPad)); add("dilation", pair(a.dilation));
      add("groups", std::to_string(a.groups)); add("bias", a.bias ? "true" : "false");
      break;
    case OpKind::GroupNorm:
      if (a.normChannels) add("over", "channels");
      else add("groups", std::to_string(a.groups));
      add("eps", fmtDouble(a.eps)); add("affine", a.bias ? "true" : "false");
      break;
    case OpKind::Pad:
      add("top", std::to_string(a.pad[0])); add("bottom", std::to_string(a.padEnd[0]));
      add("left", std::to_string(a.pad[1])); add("right", std::to_string(a.padEnd[1]));
      break;
    case OpKind::PReLU: add("num_parameters", std::to_string(a.out)); add("init", fmtDouble(a.init)); break;
    case OpKind::Activation:
      for (const auto& [k, v] : a.act.args) add(k, fmtDouble(v));
      break;
    case OpKind::LRN:
      add("size", std::to_string(a.size)); add("alpha", fmtDouble(a.alpha)); add("beta", fmtDouble(a.beta));
      add("k", fmtDouble(a.k));
      break;
    default: break;
  }
  return s;
}

std::string printGraph(const Graph& g, const SourceManager& sm) {
  std::ostringstream o;
  o << "graph " << g.name << " {\n";
  for (const auto& n : g.nodes) {
    o << "  %" << n.name << " = " << nodeOpName(n);
    if (!n.inputs.empty()) {
      o << "(";
      for (size_t i = 0; i < n.inputs.size(); ++i) o << (i ? ", " : "") << "%" << g.nodes[n.inputs[i]].name;
      o << ")";
    }
    std::string a = attrStr(n);
    if (!a.empty()) o << " {" << a << "}";
    o << " : " << dimsStr(n.shape);
    if (n.loc.valid()) o << "  @" << sm.where(n.loc);
    o << "\n";
    for (int p : n.params) o << "    param " << g.params[p].name << " " << dimsStr(g.params[p].shape) << "\n";
  }
  o << "  return %" << g.nodes[g.output].name << "\n}\n";
  return o.str();
}

std::string printParams(const Graph& g) {
  std::string s;
  for (const auto& p : g.params) s += p.name + (p.isInt64() ? " i64 " : " f32 ") + dimsStr(p.shape) + "\n";
  return s;
}

void orderParamsAsPyTorch(Graph& g) {
  // A sort key per parameter: per module level, (0, own position) for the parameter itself at its
  // last level, else (1, the submodule's first appearance among its parent's).
  std::map<std::string, std::map<std::string, int>> firstSeen;  // module -> child segment -> order
  std::map<std::string, int> ownSeen;                            // module -> own parameters so far
  std::vector<std::vector<std::pair<int, int>>> keys(g.params.size());
  for (size_t i = 0; i < g.params.size(); ++i) {
    const std::string& name = g.params[i].name;
    std::string module;
    size_t start = 0;
    for (;;) {
      size_t dot = name.find('.', start);
      if (dot == std::string::npos) {
        keys[i].push_back({0, ownSeen[module]++});
        break;
      }
      std::string seg = name.substr(start, dot - start);
      auto& kids = firstSeen[module];
      auto it = kids.find(seg);
      if (it == kids.end()) it = kids.emplace(seg, (int)kids.size()).first;
      keys[i].push_back({1, it->second});
      module += (module.empty() ? "" : ".") + seg;
      start = dot + 1;
    }
  }
  std::vector<int> order(g.params.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = (int)i;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return keys[a] < keys[b]; });
  std::vector<int> newIndex(order.size());
  std::vector<ParamInfo> sorted;
  for (size_t i = 0; i < order.size(); ++i) newIndex[order[i]] = (int)i, sorted.push_back(g.params[order[i]]);
  g.params = std::move(sorted);
  for (auto& n : g.nodes)
    for (int& p : n.params) p = newIndex[p];
}

}  // namespace cnnc
