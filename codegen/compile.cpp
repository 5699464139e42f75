// compile.cpp: the order of the back end's passes, and why it is that order.
//
// 1. buildInferencePlan groups the graph into kernels (conv + BN + add + activation fused, BN
//    folded), interns identical kernels and places the activations in one arena. Arena offsets
//    depend on shapes only, so memory is planned here once, whatever the schedules become.
// 2. applyTargetSchedules re-derives every kernel's default schedule for the resolved target
//    (vector width: AVX2, AVX-512, NEON; GPU targets take the GPU schedule). It runs before
//    anything reads a kernel's name: functionName() hashes the signature, which includes the
//    schedule, and the kernel cache, the plan JSON and the glue all refer to kernels by name.
// 3. applyTuning replaces the defaults by the fastest schedule the tuning database holds for
//    (kernel, target). After 2, so a tuned schedule is not overwritten by a default; records are
//    keyed by KernelSpec::key(), which leaves out schedule and packing, so any default finds them.
// 4. packConvWeights (inference only) lets convs that vectorise over output channels read weights
//    packed once at load as [O/T, C, kh, kw, T] (common/packed_layout.h), and Winograd convs read
//    them transformed once at load, [16, C, O] (common/winograd_weights.h). After 2 and 3: whether a
//    conv packs, how, and its block T = vec * chanVec, depend on its final schedule. It changes the
//    spec (so its name) and the const tensor's shape, both of which the plan JSON records. The
//    training plan does not pack: the optimizer updates the weights in place every step.
// 5. The training plan (when the net ends in class scores) takes steps 1-3.
//    Then the kernels of both plans are merged, each functionName once (after 2-4, as names
//    depend on schedule and packing): a kernel both plans use is compiled and linked once.
// 6. compileKernels compiles each kernel ahead of time (or finds it in the cache, keyed by its
//    signature, the target and this compiler build).
// 7. planToJson / trainPlanToJson serialise the plans (they name kernels, so after 2-5).
// 8. linkExecutable or buildLibrary (--emit=lib, a static library; --emit=python, a shared one)
//    links the kernels, the Halide runtime, cnnc's runtime and the embedded plans.
#include "compile.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#ifndef CNNC_VERSION
#define CNNC_VERSION "0.0.0"
#endif

namespace fs = std::filesystem;

namespace cnnc::codegen {

Plans buildPlans(const Graph& g, const std::string& resolvedTarget, const TuningDb& db, bool withTraining) {
  Plans out;
  out.inference = buildInferencePlan(g);                                        // 1
  applyTargetSchedules(out.inference, resolvedTarget);                          // 2
  out.tuned += applyTuning(out.inference.specs, resolvedTarget, db);            // 3
  packConvWeights(out.inference);                                               // 4
  out.specs = out.inference.specs;
  if (!withTraining) return out;
  TrainPlan tp;                                                                 // 5
  if (!buildTrainingPlan(g, tp, out.whyNoTraining)) return out;
  applyTargetSchedules(tp.plan, resolvedTarget);
  out.tuned += applyTuning(tp.plan.specs, resolvedTarget, db);
  std::set<std::string> seen;
  for (const auto& s : out.specs) seen.insert(s.functionName());
  for (const auto& s : tp.plan.specs)
    if (seen.insert(s.functionName()).second) out.specs.push_back(s);
  out.training = std::move(tp);
  return out;
}

bool compile(const Graph& g, const SourceManager& sm, const CompileOptions& o, CompileResult& out, std::string& err) {
  auto t0 = std::chrono::steady_clock::now();
  auto diag = [&](const char* severity, const std::string& text) {
    if (o.diag) o.diag(severity, text);
    else fprintf(stderr, "cnnc: %s: %s\n", severity, text.c_str());
  };
  if (!resolveTarget(o.target, out.target, err)) return false;
  if (o.asPython && out.target.rfind("arm-", 0) == 0) {  // before any kernel is compiled for nothing
    err = "--emit=python builds a module for this machine's Python; for an aarch64 board use --emit=lib";
    return false;
  }
  std::error_code ec;
  fs::path dir = o.asLibrary ? fs::path(o.output) : fs::path(o.output).parent_path();
  if (o.asLibrary) fs::create_directories(dir, ec);
  if (!dir.empty() && !fs::is_directory(dir, ec)) {
    err = "cannot write '" + o.output + "': folder '" + dir.string() + "' does not exist";
    return false;
  }
  if (access(dir.empty() ? "." : dir.c_str(), W_OK) != 0) {
    err = "cannot write '" + o.output + "': " + strerror(errno);
    return false;
  }
  // Tuned schedules (`cnnc tune`) replace the defaults of the kernels the database knows.
  TuningDb db;
  if (o.tuningDbPath != "none") {
    std::vector<std::string> warnings;
    if (!readTuningDb(o.tuningDbPath, CNNC_VERSION, db, err, warnings)) {
      err += " (or compile with --tuning-db none)";
      return false;
    }
    for (const auto& w : warnings) diag("warning", w);
  }

  // Executables and libraries carry a training step when the net ends in class scores.
  Plans plans = buildPlans(g, out.target, db, !o.inferenceOnly);
  std::string noTraining = o.inferenceOnly ? "it was built with --inference-only (compile it without that flag to train)" : plans.whyNoTraining;
  if (!o.asLibrary && !o.inferenceOnly && !plans.training) diag("note", "the executable infers but cannot train: " + plans.whyNoTraining);
  out.tuned = plans.tuned;
  out.calls = plans.inference.calls.size();

  AotOptions ao;
  ao.target = o.target;
  ao.cacheDir = o.cacheDir;
  ao.jobs = o.jobs;
  ao.verbose = o.verbose;
  std::vector<std::string> objects;
  if (!compileKernels(plans.specs, ao, objects, out.stats, err)) return false;  // 6
  std::string json = planToJson(plans.inference, g, sm, out.target, plans.training ? "" : noTraining);  // 7
  std::string trainJson = plans.training ? trainPlanToJson(*plans.training, g, sm, out.target) : "";
  bool ok = o.asLibrary ? buildLibrary(json, trainJson, plans.specs, objects, o.output, g.name, o.asPython, ao, err)  // 8
                        : linkExecutable(json, trainJson, plans.specs, objects, o.output, ao, err);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return ok;
}

}  // namespace cnnc::codegen
