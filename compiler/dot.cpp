// dot.cpp: `cnnc --emit=dot`, a Graphviz picture of the network. Block instances and seqs are
// nested clusters; residual skips are dashed orange edges and concat inputs are blue, so ResNet's
// skips and Inception's branches stand out at a glance.
#include <functional>
#include <sstream>

#include "graph.h"

namespace cnnc {

static std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o;
}

static const char* fill(OpKind k) {
  switch (k) {
    case OpKind::Input: return "#dbeafe";
    case OpKind::Conv: case OpKind::ConvTranspose: return "#e0e7ff";
    case OpKind::Linear: return "#ede9fe";
    case OpKind::BatchNorm: return "#f1f5f9";
    case OpKind::Add: return "#fef3c7";
    case OpKind::Concat: return "#fef3c7";
    case OpKind::Mul: return "#fce7f3";
    case OpKind::MaxPool: case OpKind::AvgPool: case OpKind::AdaptiveAvgPool: case OpKind::AdaptiveMaxPool: return "#dcfce7";
    default: return "#ffffff";
  }
}

std::string printDot(const Graph& g) {
  std::ostringstream o;
  o << "digraph \"" << esc(g.name) << "\" {\n"
    << "  graph [rankdir=TB, fontname=\"Helvetica\", fontsize=11, label=\"" << esc(g.name) << "\", labelloc=t];\n"
    << "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];\n"
    << "  edge [color=\"#64748b\"];\n";
  std::vector<std::vector<int>> kids(g.modules.size()), members(g.modules.size());
  for (size_t i = 1; i < g.modules.size(); ++i) kids[g.modules[i].parent].push_back((int)i);
  for (const auto& n : g.nodes) members[n.module].push_back(n.id);
  std::function<void(int, int)> emit = [&](int m, int depth) {
    std::string pad(depth * 2, ' ');
    if (m != 0) {
      o << pad << "subgraph cluster_" << m << " {\n"
        << pad << "  label=\"" << esc(g.modules[m].path + " : " + g.modules[m].kind) << "\"; style=\"rounded,dashed\"; color=\"#94a3b8\"; fontsize=10;\n";
    }
    for (int id : members[m]) {
      const Node& n = g.nodes[id];
      o << pad << "  n" << id << " [label=\"" << esc(n.name) << "\\n" << nodeOpName(n) << " " << dimsStr(n.shape) << "\", fillcolor=\"" << fill(n.op) << "\"";
      if (n.op == OpKind::Add || n.op == OpKind::Concat || n.op == OpKind::Mul) o << ", shape=ellipse";
      o << "];\n";
    }
    for (int k : kids[m]) emit(k, depth + 1);
    if (m != 0) o << pad << "}\n";
  };
  emit(0, 0);
  for (const auto& n : g.nodes)
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      o << "  n" << n.inputs[i] << " -> n" << n.id;
      if (n.op == OpKind::Add && i > 0) o << " [style=dashed, color=\"#d97706\", penwidth=1.6, label=\"skip\", fontsize=8]";
      else if (n.op == OpKind::Concat) o << " [color=\"#2563eb\"]";
      else if (n.op == OpKind::Mul && i > 0) o << " [color=\"#db2777\", label=\"gate\", fontsize=8]";
      o << ";\n";
    }
  o << "}\n";
  return o.str();
}

}  // namespace cnnc
