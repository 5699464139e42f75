// tune_in_net.cpp: see tune_in_net.h. Why: a kernel timed alone is not the kernel in the net. The
// isolated search ranked TinyResNet's training kernels (batch 32, Xeon of the Sapphire Rapids
// class) 1.09x faster than the defaults, and the whole step ran 0.97x as fast with them. In the net
// a kernel finds its inputs in the cache where the layer before left them, shares the memory bus
// with no one, and runs right after other kernels' threads; alone, none of that holds. The algorithm:
//  1. The net is compiled with the defaults (A) and with the best isolated records (B); each call
//     of either plan maps to its kernel's key through the plan's specs.
//  2. A and B run `bench [--train] --profile --json` in alternation, `rounds` times each (the order
//     flips every round); a call's time in a round is its median over that round's profiled runs.
//  3. Calls are paired by (label, phase, kernel kind, occurrence): the same layer's same kernel in
//     A and B. Per key whose schedule differs, the medians over rounds of its calls' summed times
//     in A and in B, divided by its calls, are its times in the net. The default's is appended as
//     a record with situ "net", and the tuned schedule's too when it is 3% faster; otherwise the
//     default, the only schedule of that kernel on record in the net, is what compiles use.
#include "tune_in_net.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "../../runtime/median.h"  // by path: runtime/ also has a plan.h
#include "compile.h"
#include "tuning_db.h"

namespace cnnc {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// One profiled call: which layer, which phase, which kind of kernel, the how-manieth such call.
using CallKey = std::tuple<std::string, std::string, std::string, int>;

// Runs `cmd`, returns its stdout; false when it fails.
bool capture(const std::string& cmd, std::string& out) {
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return false;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  return pclose(p) == 0;
}

// "k_convbackweight_8ffac624" -> "convbackweight"
std::string kindOf(const std::string& fn) {
  size_t a = fn.find('_'), b = fn.rfind('_');
  return a == std::string::npos || b <= a ? fn : fn.substr(a + 1, b - a - 1);
}

struct Profiled {
  double runMs = 0;                       // the bench's median ms per run
  std::map<CallKey, std::string> kernel;  // the call's kernel function
  std::map<CallKey, double> ms;           // its median ms over the profiled runs
};

bool profile(const std::string& exe, bool train, int batch, Profiled& out, std::string& err) {
  std::string cmd = "'" + exe + "' bench --profile --json --warmup 2 --iters 5 --batch " + std::to_string(batch) + (train ? " --train" : "") + " 2>/dev/null";
  std::string text;
  if (!capture(cmd, text)) { err = "the net did not run: " + cmd; return false; }
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.contains("profile")) { err = "no profile from: " + cmd; return false; }
  out.runMs = j["median_ms"].get<double>();
  std::map<std::tuple<std::string, std::string, std::string>, int> seen;
  for (const auto& c : j["profile"]["calls"]) {
    std::string fn = c["kernel"].get<std::string>(), label = c["label"].get<std::string>(), phase = c["phase"].get<std::string>();
    int n = seen[{label, phase, kindOf(fn)}]++;
    CallKey k{label, phase, kindOf(fn), n};
    out.kernel[k] = fn;
    out.ms[k] = c["ms"].get<double>();
  }
  return true;
}

}  // namespace

bool measureInNet(const Graph& g, const SourceManager& sm, const codegen::TuneOptions& o, bool train, int rounds, std::string& err) {
  char tmpl[] = "/tmp/cnnc-tune-net-XXXXXX";
  if (!mkdtemp(tmpl)) { err = "cannot create a temporary folder"; return false; }
  std::string dir = tmpl;
  struct Cleanup {
    std::string d;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  } cleanup{dir};

  // 1. Both executables, and each kernel function's key and schedule.
  std::string exe[2] = {dir + "/defaults", dir + "/tuned"};
  std::map<std::string, const codegen::KernelSpec*> specOf;
  std::vector<codegen::Plans> plans;
  codegen::TuningDb db;
  std::vector<std::string> warnings;
  if (!codegen::readTuningDb(o.dbPath, o.version, db, err, warnings)) return false;
  plans.push_back(codegen::buildPlans(g, o.target, codegen::TuningDb{}, train));
  plans.push_back(codegen::buildPlans(g, o.target, db, train));
  std::set<std::string> fns[2];
  for (int v = 0; v < 2; ++v)
    for (const auto& s : plans[v].specs) fns[v].insert(s.functionName());
  if (fns[0] == fns[1]) {
    fprintf(stderr, "cnnc tune: in the net: no kernel has a schedule other than its default on record; nothing to compare\n");
    return true;
  }
  for (const auto& p : plans)
    for (const auto& s : p.specs) specOf[s.functionName()] = &s;
  for (int v = 0; v < 2; ++v) {
    codegen::CompileOptions co;
    co.output = exe[v];
    co.target = o.target;
    co.cacheDir = o.cacheDir;
    co.jobs = o.jobs;
    co.tuningDbPath = v == 0 ? "none" : o.dbPath;
    co.diag = [](const std::string&, const std::string&) {};
    codegen::CompileResult cr;
    if (!codegen::compile(g, sm, co, cr, err)) { err = "compiling the net to measure it: " + err; return false; }
  }

  // 2. Alternating profiled runs.
  std::vector<Profiled> runs[2];
  for (int r = 0; r < rounds; ++r)
    for (int i = 0; i < 2; ++i) {
      int v = (r % 2) ^ i;
      runs[v].emplace_back();
      if (!profile(exe[v], train, o.batch, runs[v].back(), err)) return false;
    }

  // 3. Per key: the calls' summed time in each round, then the median over rounds.
  struct Sum {
    std::map<int, double> ms[2];  // round -> summed ms of its calls
    int calls = 0;
    codegen::Schedule sched[2];
    std::string key;
  };
  std::map<std::string, Sum> byKey;
  for (const auto& [ck, fnB] : runs[1][0].kernel) {
    auto itA = runs[0][0].kernel.find(ck);
    if (itA == runs[0][0].kernel.end() || !specOf.count(fnB) || !specOf.count(itA->second)) continue;
    const codegen::KernelSpec &a = *specOf[itA->second], &b = *specOf[fnB];
    if (!codegen::tunable(b) || a.schedule.str() == b.schedule.str()) continue;
    Sum& s = byKey[b.key()];
    s.key = b.key(), s.sched[0] = a.schedule, s.sched[1] = b.schedule;
    s.calls++;
    for (int v = 0; v < 2; ++v)
      for (int r = 0; r < rounds; ++r) s.ms[v][r] += runs[v][r].ms.at(ck);
  }
  int kept = 0, reverted = 0;
  for (auto& [key, s] : byKey) {
    double ms[2];
    for (int v = 0; v < 2; ++v) {
      std::vector<double> per;
      for (auto& [r, t] : s.ms[v]) per.push_back(t / s.calls);
      ms[v] = rt::medianOf(per);
    }
    // Kept only when it wins in the net by 3%: per-kernel times in the net still swing by a few
    // percent between rounds on a shared machine, and a schedule kept on noise can cost as much.
    bool keep = ms[1] < 0.97 * ms[0];
    for (int v = 0; v < (keep ? 2 : 1); ++v) {
      codegen::TuningRecord rec;
      rec.kernel = key, rec.target = o.target, rec.schedule = s.sched[v], rec.medianMs = std::max(ms[v], 1e-6), rec.batch = o.batch;
      rec.version = o.version, rec.date = "", rec.net = o.net, rec.inNet = true;
      char b[32];
      time_t t = time(nullptr);
      strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
      rec.date = b;
      if (!codegen::appendTuningRecord(o.dbPath, rec, err)) return false;
    }
    (keep ? kept : reverted)++;
    if (o.verbose)
      fprintf(stderr, "cnnc tune: in the net: %-60.60s x%d  default %.3f ms  tuned %.3f ms  (%.2fx)\n", key.c_str(), s.calls, ms[0], ms[1],
              ms[0] / ms[1]);
  }
  std::vector<double> whole[2];
  for (int v = 0; v < 2; ++v)
    for (const auto& p : runs[v]) whole[v].push_back(p.runMs);
  fprintf(stderr,
          "cnnc tune: in the net (%d alternating profiled runs each): %.2f ms per run with the defaults, %.2f ms with the isolated search's best "
          "(%.2fx); %d kernels keep their tuned schedule, %d go back to the default (slower in the net)\n",
          rounds, rt::medianOf(whole[0]), rt::medianOf(whole[1]), rt::medianOf(whole[0]) / rt::medianOf(whole[1]), kept, reverted);
  return true;
}

}  // namespace cnnc
