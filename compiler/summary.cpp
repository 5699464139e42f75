// summary.cpp: `cnnc --summary`, a per-layer table like torchsummary's, then totals.
#include <cstdio>
#include <sstream>

#include "common/recipe.h"
#include "graph.h"

namespace cnnc {

// Millions with two decimals and thousands separators, as REFERENCE.md quotes MACs: "15,470.26 M".
static std::string millions(int64_t v) {
  int64_t hundredths = (v + 5000) / 10000;
  char frac[8];
  snprintf(frac, sizeof frac, ".%02lld", (long long)(hundredths % 100));
  return withCommas(hundredths / 100) + frac + " M";
}

static std::string bytes(int64_t v) {
  char b[32];
  if (v >= (1 << 20)) snprintf(b, sizeof b, "%.2f MiB", v / 1048576.0);
  else snprintf(b, sizeof b, "%.2f KiB", v / 1024.0);
  return b;
}

std::string printSummary(const Graph& g) {
  std::ostringstream o;
  size_t w = 24;
  for (const auto& n : g.nodes) w = std::max(w, n.name.size() + 2);
  char line[512];
  std::string rule(w + 62, '-');
  o << "Network " << g.name << " (" << g.file << ")\n" << rule << "\n";
  snprintf(line, sizeof line, "%-*s%-17s%-18s%13s%14s\n", (int)w, "Layer", "Op", "Output shape", "Params", "MACs");
  o << line << rule << "\n";
  for (const auto& n : g.nodes) {
    int64_t p = 0;
    for (int i : n.params) if (g.params[i].trainable()) p += g.params[i].numel();
    snprintf(line, sizeof line, "%-*s%-17s%-18s%13s%14s\n", (int)w, n.name.c_str(), nodeOpName(n).c_str(), dimsStr(n.shape).c_str(),
             p ? withCommas(p).c_str() : "-", n.macs ? withCommas(n.macs).c_str() : "-");
    o << line;
  }
  o << rule << "\n";
  int64_t total = g.totalParams();
  o << "Total params: " << withCommas(total) << "\n";
  o << "Trainable params: " << withCommas(total) << "\n";
  o << "Non-trainable params: 0\n";
  o << "BN buffers: " << withCommas(g.bufferElems()) << "\n";
  o << "MACs per image: " << withCommas(g.totalMacs()) << " (" << millions(g.totalMacs()) << ")\n";
  o << "Forward activations, batch 1: " << bytes(g.activationBytes()) << "\n";
  o << "Parameter memory: " << bytes(total * 4) << "\n";
  // The recipe as written, values evaluated (the executable fills in the rest: `X info`).
  if (!g.recipe.empty()) {
    std::string r;
    for (const recipe::Value& e : g.recipe) {
      std::string v;
      switch (recipe::find(e.key)->kind) {
        case recipe::Kind::Int: v = std::to_string((int64_t)e.num); break;
        case recipe::Kind::Float: snprintf(line, sizeof line, "%g", e.num); v = line; break;
        case recipe::Kind::Bool: v = e.flag ? "true" : "false"; break;
        case recipe::Kind::String: v = "\"" + e.text + "\""; break;
        case recipe::Kind::IntList:
          for (int64_t m : e.list) v += (v.empty() ? "" : ", ") + std::to_string(m);
          v = "[" + v + "]";
          break;
      }
      r += (r.empty() ? "" : ", ") + e.key + " = " + v;
    }
    o << "Recipe: " << r << "\n";
  }
  return o.str();
}

}  // namespace cnnc
