// compile.h: the back end's pass pipeline in one place: from a checked graph to the plans, the
// compiled kernels and the linked executable (or --emit=lib library). `cnnc`, `cnnc tune` and the
// tests call these instead of running the passes themselves; compile.cpp says why they run in
// the order they do.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "aot.h"
#include "graph.h"
#include "plan.h"
#include "train_plan.h"
#include "tuning_db.h"

namespace cnnc::codegen {

// The plans of one net for one target, ready to serialise and compile.
struct Plans {
  Plan inference;                    // target schedules, tuning applied, conv weights packed
  std::optional<TrainPlan> training;  // target schedules, tuning applied; absent: see whyNoTraining
  std::string whyNoTraining;         // why the net cannot train (empty when it can or was not asked)
  int tuned = 0;                     // specs whose schedule came from the tuning database (both plans)
  std::vector<KernelSpec> specs;     // the kernels of both plans, inference first, each functionName once
};

// Passes 1-5 of compile.cpp: builds the inference plan (and, with `withTraining`, the training
// plan) of `g` for `resolvedTarget` (see resolveTarget), with the schedules of `db` where it has
// them. An empty database leaves the default schedules (what `cnnc tune` measures against).
Plans buildPlans(const Graph& g, const std::string& resolvedTarget, const TuningDb& db, bool withTraining = true);

struct CompileOptions {
  std::string output;            // the executable, or with asLibrary the folder of lib<net>.a and <net>.h
  bool asLibrary = false;        // --emit=lib: static library + C header (with the training step when the net can train)
  bool asPython = false;         // --emit=python (with asLibrary): shared library + the Python module cnnc_net.py
  bool inferenceOnly = false;    // --inference-only: no training plan, no training kernels (deployment builds)
  std::string target = "host";   // as the user wrote it: "host", "host-cuda", a Halide target string
  std::string cacheDir;          // compiled-kernel cache (empty: the default, see aot.h)
  int jobs = 0;                  // parallel kernel compiles; 0: number of cores
  bool verbose = false;          // show each kernel compile and the link command
  std::string tuningDbPath;      // the tuning database (a missing file is empty; records of other cnnc versions
                                 // are ignored); "none": default schedules only
  // Notes and warnings on the way ("note", "warning" and the text); unset: printed on stderr as
  // "cnnc: <severity>: <text>".
  std::function<void(const std::string& severity, const std::string& text)> diag;
};

struct CompileResult {
  std::string target;   // the resolved target
  AotStats stats;       // kernels compiled and found in the cache
  int tuned = 0;        // kernels with a schedule from the tuning database
  size_t calls = 0;     // kernel calls of the inference plan
  double seconds = 0;   // wall time of compile()
};

// The whole pipeline: resolves the target, checks that the output can be written, reads the tuning
// database, buildPlans, compiles the kernels (cached), serialises the plans and links. False with
// `err` (one message, without the "cnnc: error: " prefix) on the first failure.
bool compile(const Graph& g, const SourceManager& sm, const CompileOptions& o, CompileResult& out, std::string& err);

}  // namespace cnnc::codegen
