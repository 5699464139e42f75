// profile.cpp: the roofline report of `bench --profile`.
//
// 1. Each call's time is its median over the profiled runs (one run's times swing by 2x on a
//    shared 2-core machine; a median of ten does not).
// 2. Work per call: FLOPs from the plan (per image, from the op's own formula, codegen/ops), times
//    the batch; bytes as the sum of the arguments' sizes, each counted once (a lower bound).
// 3. A kernel's limit is max(FLOPs / FMA peak, bytes / memory bandwidth): the roofline's time for
//    that work. "% of bound" is that time over the measured one, and "bound" names the roof that
//    sets it. Small tensors that stay in cache can beat the memory roof (over 100%), and Winograd
//    kernels, credited with the direct algorithm's FLOPs, the FMA roof.
// 4. Calls of one kernel (same generated code) in one phase are pooled into one row, named after
//    the first call; rows are sorted by time, the slowest first.
#include "profile.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "median.h"

namespace cnnc::rt {

namespace {

struct CallStat {
  double ms = 0, flops = 0, bytes = 0;
  bool ran = false;
};

std::vector<CallStat> callStats(const ProfileInput& in) {
  const Plan& p = *in.plan;
  std::vector<CallStat> s(p.calls.size());
  for (size_t c = 0; c < p.calls.size(); ++c) {
    std::vector<double> ms;
    for (const auto& r : in.runs)
      if (c < r.size() && r[c] > 0) ms.push_back(r[c]);
    s[c].ran = !ms.empty();
    s[c].ms = medianOf(ms);
    s[c].flops = p.kernels[p.calls[c].kernel].flops * in.batch;
    s[c].bytes = callBytes(p, c, in.batch);
  }
  return s;
}

const char* phaseOf(const Plan& p, size_t c) { return p.isTraining() && (int)c >= p.forwardCalls ? "backward" : "forward"; }

// The kernel kind: the function name without "k_" and its signature hash ("k_conv_1a2b" -> "conv").
std::string kindOf(const Plan& p, size_t c) {
  std::string fn = p.kernels[p.calls[c].kernel].fn;
  fn = fn.substr(0, fn.rfind('_'));
  return fn.rfind("k_", 0) == 0 ? fn.substr(2) : fn;
}

// "layer1.0.conv1+layer1.0.bn1+layer1.0.2" -> "layer1.0.conv1 +2": the first layer of a fused
// call and how many more it absorbed, cut to the table's column.
std::string shortLabel(const std::string& label) {
  size_t plus = label.find('+');
  std::string s = label.substr(0, plus);
  if (plus != std::string::npos && label.find(" (") == std::string::npos)
    s += " +" + std::to_string(std::count(label.begin(), label.end(), '+'));
  else if (plus != std::string::npos)
    s = label;
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

struct Row {
  std::string name, kind;
  int calls = 0;
  double ms = 0, flops = 0, bytes = 0;
};

// The roofline time of `r`'s work in ms, and which roof sets it.
double boundMs(const Row& r, const MachinePeak& m, const char** which) {
  double tf = m.gflops > 0 ? r.flops / (m.gflops * 1e6) : 0, tb = m.gbs > 0 ? r.bytes / (m.gbs * 1e6) : 0;
  *which = tf >= tb ? "FMA" : "mem";
  return std::max(tf, tb);
}

void printRows(std::vector<Row>& rows, double total, const MachinePeak& m, FILE* f) {
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.ms > b.ms; });
  fprintf(f, "  %-40s %-15s %5s %9s %6s %8s %7s %5s %6s\n", "first call", "kernel kind", "calls", "ms", "share", "GFLOP/s", "GB/s", "bound", "of it");
  for (const auto& r : rows) {
    const char* which = "";
    double b = boundMs(r, m, &which);
    std::string name = shortLabel(r.name);
    double s = r.ms > 0 ? r.ms * 1e-3 : 0;
    char gf[16] = "-", gbs[16] = "-", of[16] = "-";
    if (s > 0 && r.flops > 0) snprintf(gf, sizeof gf, "%.1f", r.flops / s / 1e9);
    if (s > 0) snprintf(gbs, sizeof gbs, "%.1f", r.bytes / s / 1e9);
    if (s > 0 && b > 0) snprintf(of, sizeof of, "%.0f%%", 100 * b / r.ms);
    fprintf(f, "  %-40s %-15s %5d %9.3f %5.1f%% %8s %7s %5s %6s\n", name.c_str(), r.kind.c_str(), r.calls, r.ms, total > 0 ? 100 * r.ms / total : 0, gf, gbs,
            b > 0 ? which : "-", of);
  }
}

}  // namespace

double callBytes(const Plan& p, size_t call, int64_t batch) {
  double b = 0;
  for (const auto& a : p.calls[call].args) b += a.isConst ? 4.0 * numel(p.consts[a.id].shape) : 4.0 * numel(p.acts[a.id].shape) * batch;
  return b;
}

void printRoofline(const ProfileInput& in, FILE* f) {
  const Plan& p = *in.plan;
  auto st = callStats(in);
  double total = 0;
  for (const auto& s : st) total += s.ms;
  fprintf(f, "profile: each call's median over %zu runs, batch %lld, %d threads\n", in.runs.size(), (long long)in.batch, in.threads);
  if (in.peak.gflops > 0)
    fprintf(f, "roofs, measured now: %.1f GFLOP/s FP32 FMA (%s), %.1f GB/s memory (triad)\n", in.peak.gflops, in.peak.isa.c_str(), in.peak.gbs);
  for (const char* phase : {"forward", "backward"}) {
    std::map<int, Row> byKernel;
    std::vector<int> order;
    double ms = 0;
    for (size_t c = 0; c < p.calls.size(); ++c) {
      if (!st[c].ran || std::string(phaseOf(p, c)) != phase) continue;
      int k = p.calls[c].kernel;
      if (!byKernel.count(k)) byKernel[k].name = p.calls[c].label, byKernel[k].kind = kindOf(p, c), order.push_back(k);
      Row& r = byKernel[k];
      r.calls++, r.ms += st[c].ms, r.flops += st[c].flops, r.bytes += st[c].bytes;
      ms += st[c].ms;
    }
    if (order.empty()) continue;
    std::vector<Row> rows;
    for (int k : order) rows.push_back(byKernel[k]);
    fprintf(f, "%s: %.3f ms, %.1f%% of the kernels' time\n", phase, ms, total > 0 ? 100 * ms / total : 0);
    printRows(rows, total, in.peak, f);
  }
  std::map<std::string, Row> kinds;
  for (size_t c = 0; c < p.calls.size(); ++c) {
    if (!st[c].ran) continue;
    Row& r = kinds[kindOf(p, c)];
    r.name = "(all)", r.kind = kindOf(p, c);
    r.calls++, r.ms += st[c].ms, r.flops += st[c].flops, r.bytes += st[c].bytes;
  }
  std::vector<Row> rows;
  for (auto& [k, r] : kinds) rows.push_back(r);
  fprintf(f, "by kernel kind (all phases): %.3f ms\n", total);
  printRows(rows, total, in.peak, f);
}

std::string rooflineJson(const ProfileInput& in) {
  const Plan& p = *in.plan;
  auto st = callStats(in);
  nlohmann::json calls = nlohmann::json::array();
  double total = 0;
  for (size_t c = 0; c < p.calls.size(); ++c) {
    if (!st[c].ran) continue;
    total += st[c].ms;
    calls.push_back({{"label", p.calls[c].label}, {"kernel", p.kernels[p.calls[c].kernel].fn}, {"phase", phaseOf(p, c)}, {"ms", st[c].ms},
                     {"flops", st[c].flops}, {"bytes", st[c].bytes}});
  }
  nlohmann::json j = {{"runs", in.runs.size()}, {"threads", in.threads}, {"peak_gflops", in.peak.gflops}, {"mem_gbs", in.peak.gbs},
                      {"isa", in.peak.isa}, {"total_ms", total}, {"calls", calls}};
  return j.dump();
}

}  // namespace cnnc::rt
