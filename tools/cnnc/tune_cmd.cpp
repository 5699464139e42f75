// tune_cmd.cpp: `cnnc tune FILE.cnn`: the command line of the schedule tuner (codegen/tune.h).
#include "tune_cmd.h"

#include "gpu_schedule.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>

#include "Halide.h"
#include "aot.h"
#include "compile.h"
#include "flags.h"
#include "frontend.h"
#include "../../runtime/progress.h"  // by path: runtime/ also has a plan.h
#include "tune.h"
#include "tune_in_net.h"
#include "tuning_db.h"

#ifndef CNNC_VERSION
#define CNNC_VERSION "0.0.0"
#endif

namespace cnnc {

namespace {

// "10m", "90s", "1h" or plain seconds; -1 when malformed.
double parseDuration(const std::string& s) {
  char* end = nullptr;
  double v = strtod(s.c_str(), &end);
  if (end == s.c_str() || v <= 0) return -1;
  std::string unit(end);
  if (unit.empty() || unit == "s") return v;
  if (unit == "m" || unit == "min") return v * 60;
  if (unit == "h") return v * 3600;
  return -1;
}

// The distinct kernels of `plan` with the number of calls each gets per run.
void collect(const codegen::Plan& plan, bool inference, std::vector<codegen::TuneKernel>& out, std::map<std::string, size_t>& index) {
  for (const auto& c : plan.calls) {
    const codegen::KernelSpec& s = plan.specs[c.spec];
    auto key = s.signature() + (inference ? " infer" : " train");
    auto it = index.find(key);
    if (it != index.end()) { out[it->second].calls++; continue; }
    index[key] = out.size();
    out.push_back({s, 1, inference, {}});
    for (size_t i = 0; i + 1 < c.args.size(); ++i) {  // the output is last
      const codegen::KernelArg& a = c.args[i];
      out.back().args.push_back(a.isConst ? codegen::TuneArg{plan.consts[a.id].shape, false} : codegen::TuneArg{plan.acts[a.id].shape, true});
    }
  }
}

}  // namespace

int runTune(int argc, char** argv) {
  CLI::App app{"cnnc tune: measures schedule candidates of a net's kernels on this machine and records them in the tuning database; "
               "later compiles of any net with the same kernels use the fastest",
               "cnnc tune"};
  std::string input, target = "host", budgetText = "10m", db = codegen::defaultTuningDbPath(), cacheDir, network, inputShape, remote;
  bool train = false, resume = false, verbose = false, adams = false;
  int patience = 8, inNetRounds = 5, inNetCandidates = 3;
  int batch = 0, jobs = 0;
  std::vector<std::string> defines;
  app.add_option("file", input, "the .cnn source")->required();
  app.add_option("--target", target, "host (default) or a Halide target string; targets other than this machine's need --remote");
  app.add_option("--budget", budgetText, "time to spend: 10m (default), 90s, 1h");
  app.add_option("--db", db, "the tuning database (default: $CNNC_TUNING_DB or ~/.cache/cnnc/tuning.jsonl)");
  app.add_flag("--train", train, "tune the training kernels (forward and backward) instead of inference");
  app.add_flag("--resume", resume, "continue an earlier tune of this net within what is left of its budget");
  app.add_option("--batch", batch, "images per timed call (default: 1 for inference, 32 with --train)")->check(CLI::Range(1, 4096));
  app.add_option("--cache-dir", cacheDir, "compiled-kernel cache (default: $XDG_CACHE_HOME/cnnc)");
  app.add_option("-j,--jobs", jobs, "parallel candidate compiles (default: number of cores)")->check(CLI::Range(1, 256));
  app.add_option("-D,--define", defines, "override a network parameter: -D classes=10")->type_name("NAME=VALUE");
  app.add_option("--input-shape", inputShape, "tune for another input size, e.g. 3,160,160")->type_name("C,H,W");
  app.add_option("--network", network, "the network to tune when the file declares several");
  app.add_option("--patience", patience,
                 "with a cost model or similar kernels on record to order the candidates, stop a kernel after this many measured candidates "
                 "without a 1% better one, half as many when similar kernels seed it; while budget is left, the kernels it stopped go on in "
                 "further passes with twice the patience each (0: measure until its budget share or the candidates run out)")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  app.add_option("--in-net-rounds", inNetRounds,
                 "after the search, profile the net with the defaults and with each kernel's fastest schedules found (--in-net-candidates), "
                 "this many times each, and record each tuned kernel's time in the net, which later compiles prefer (0: skip; not with --remote)")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  app.add_option("--in-net-candidates", inNetCandidates,
                 "how many of each kernel's fastest isolated schedules the in-net step measures in the net (one compile of the net each)")
      ->check(CLI::Range(1, 20))
      ->capture_default_str();
  app.add_flag("-v,--verbose", verbose, "print each kernel's default and best time");
  app.add_flag("--adams2019", adams, "also try Halide's Adams2019 autoscheduler on forward convs (slow to schedule; rarely wins here)");
  app.add_option("--remote", remote,
                 "run each measurement through this command: {exe} is a static measurement program built for the target, e.g. "
                 "'scp -q {exe} board:/tmp/m && ssh board /tmp/m {args}' or 'qemu-aarch64 {exe}' (plumbing only: qemu timings mean nothing)");
  app.footer("Exit status: 0 success, 1 errors, 2 bad command line.\nExample: cnnc tune nets/resnet18.cnn --budget 10m && cnnc nets/resnet18.cnn -o resnet18");
  try {
    app.parse(argc - 1, argv + 1);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  double budget = parseDuration(budgetText);
  if (budget <= 0) {
    fprintf(stderr, "cnnc: error: --budget %s: expected a duration such as 10m, 90s or 1h\n", budgetText.c_str());
    return 2;
  }
  std::string resolved, err;
  if (!codegen::resolveTarget(target, resolved, err)) { fprintf(stderr, "cnnc: error: %s\n", err.c_str()); return 1; }
  if (codegen::isGpuTarget(resolved)) {
    fprintf(stderr, "cnnc: error: target '%s' has no tuning space yet: GPU kernels take the fixed schedules of codegen/ops/ (gpu.cpp); "
                    "tune a CPU target instead\n", target.c_str());
    return 1;
  }
  Halide::Target t(resolved), host = Halide::get_host_target();
  if (remote.empty() && (t.arch != host.arch || t.bits != host.bits || t.os != host.os)) {
    fprintf(stderr,
            "cnnc: error: cannot time target '%s' on this machine (%s): give --remote 'CMD {exe}' to run the measurements on a "
            "device of that target, or tune on one and share its database (databases concatenate)\n",
            resolved.c_str(), host.to_string().c_str());
    return 1;
  }
  if (!remote.empty() && remote.find("{exe}") == std::string::npos) {
    fprintf(stderr, "cnnc: error: --remote '%s': the command must contain {exe}, e.g. --remote 'qemu-aarch64 {exe}'\n", remote.c_str());
    return 2;
  }

  FrontendOptions fo;
  fo.elab.network = network;
  fo.color = isatty(2) && getenv("NO_COLOR") == nullptr;
  if (!applyNetworkFlags(defines, inputShape, fo)) return 2;
  FrontendResult r;
  runFrontend(input, fo, r);
  if (!r.ok) return 1;

  std::vector<codegen::TuneKernel> kernels;
  std::map<std::string, size_t> index;
  // The net's plans as `cnnc` compiles them, with the default schedules (no database): the tune
  // measures candidates against those.
  codegen::Plans plans = codegen::buildPlans(r.graph, resolved, codegen::TuningDb{}, train);
  if (train) {
    if (!plans.training) {
      fprintf(stderr, "cnnc: error: %s cannot be trained: %s\n", input.c_str(), plans.whyNoTraining.c_str());
      return 1;
    }
    collect(plans.training->plan, false, kernels, index);
  } else {
    collect(plans.inference, true, kernels, index);
  }

  codegen::TuneOptions o;
  o.target = resolved;
  o.dbPath = db;
  o.cacheDir = cacheDir;
  o.net = r.graph.name + (train ? "/train" : "/infer");
  o.version = CNNC_VERSION;
  o.budgetSeconds = budget;
  o.resume = resume;
  o.batch = batch > 0 ? batch : train ? 32 : 1;
  o.jobs = jobs;
  o.verbose = verbose;
  o.remote = remote;
  o.adams2019 = adams;
  o.patience = patience;
  // One bar per pass over the kernels (a pass after the first takes those --patience stopped), made
  // when the tuner says how many it has; the budget bounds the ETA.
  std::optional<rt::Progress> bar;
  int pass = 0;
  o.progress = [&](int done, int total, double speedup, double left) {
    if (done == 0) {  // a pass starts: its bar's clock starts now
      ++pass;
      bar.emplace("tune " + o.net + (pass > 1 ? ", pass " + std::to_string(pass) : ""), total, "kernel");
      return;
    }
    char extra[96];
    snprintf(extra, sizeof extra, "last kernel %.2fx, budget left %s", speedup, rt::formatDuration(left).c_str());
    bar->update(done, extra, left);
  };
  if (!codegen::tuneKernels(kernels, o, err)) {
    fprintf(stderr, "cnnc: error: %s\n", err.c_str());
    return 1;
  }
  bar.reset();
  if (remote.empty() && inNetRounds > 0 && !measureInNet(r.graph, r.sm, o, train, inNetRounds, inNetCandidates, err)) {
    fprintf(stderr, "cnnc: error: %s\n", err.c_str());
    return 1;
  }
  return 0;
}

}  // namespace cnnc
