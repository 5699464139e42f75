// main.cpp: the `cnnc` command line.
//
// Exit status: 0 success, 1 errors in the input (reported on stderr), 2 bad command line.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "aot.h"
#include "common/atomic_file.h"
#include "compile.h"
#include "import_cmd.h"
#include "net_weights.h"
#include "onnx_export.h"
#include "flags.h"
#include "frontend.h"
#include "plot.h"
#include "plan.h"
#include "train_plan.h"
#include "tune_cmd.h"
#include "tuning_db.h"

#ifndef CNNC_VERSION
#define CNNC_VERSION "0.0.0"
#endif

namespace fs = std::filesystem;
using namespace cnnc;

namespace {

// Writes `data` to `path` through a temporary file and a rename, so a failed or interrupted
// write never leaves a half-written output behind.
bool writeAtomically(const std::string& path, const std::string& data, std::string& err) {
  AtomicWrite w = writeFileAtomically(path, data);
  if (!w) err = std::string("cannot write '") + path + "': " + strerror(w.error);
  return bool(w);
}

// Renders DOT text to an image format with Graphviz's `dot`.
bool renderDot(const std::string& dot, const std::string& path, const std::string& fmt, std::string& err) {
  std::string tmpDot = path + ".dot.tmp." + std::to_string(getpid());
  if (!writeAtomically(tmpDot, dot, err)) return false;
  std::string tmpOut = tempPathFor(path);
  std::string cmd = "dot -T" + fmt + " '" + tmpDot + "' -o '" + tmpOut + "' 2>&1";
  int rc = system(cmd.c_str());
  unlink(tmpDot.c_str());
  if (rc != 0) {
    unlink(tmpOut.c_str());
    err = "Graphviz 'dot' failed (exit " + std::to_string(WEXITSTATUS(rc)) + ")";
    if (WEXITSTATUS(rc) == 127) err += ": install it with 'apt-get install graphviz', or write .dot instead";
    return false;
  }
  if (int e = moveIntoPlace(tmpOut, path)) {
    err = std::string("cannot write '") + path + "': " + strerror(e);
    return false;
  }
  return true;
}

// Lowers the checked graph, compiles its kernels ahead of time and links the executable (or
// the --emit=lib library): codegen::compile, the back end's pass pipeline.
int compileNetwork(FrontendResult& r, const codegen::CompileOptions& o) {
  codegen::CompileResult res;
  std::string err;
  if (!codegen::compile(r.graph, r.sm, o, res, err)) { fprintf(stderr, "cnnc: error: %s\n", err.c_str()); return 1; }
  std::string tunedNote = res.tuned ? ", " + std::to_string(res.tuned) + " tuned" : "";
  fprintf(stderr, "cnnc: %s -> %s: %d kernels (%d compiled, %d cached%s), %zu calls, %.1f s\n", r.graph.name.c_str(), o.output.c_str(), res.stats.kernels,
          res.stats.compiled, res.stats.cached, tunedNote.c_str(), res.calls, res.seconds);
  return 0;
}

// --emit=onnx: the weights (checked as the executable checks them) and the model, written atomically.
int writeOnnx(FrontendResult& r, const std::string& output, const std::string& target, const std::string& weightsPath, int opset) {
  if (output.empty() || output == "-") { fprintf(stderr, "cnnc: error: --emit=onnx needs -o FILE.onnx\n"); return 2; }
  std::string tgt, err, bytes;
  if (!codegen::resolveTarget(target, tgt, err)) { fprintf(stderr, "cnnc: error: %s\n", err.c_str()); return 1; }
  interop::NamedTensors weights;
  codegen::Plan plan = codegen::buildInferencePlan(r.graph);
  if (!netWeights(codegen::planToJson(plan, r.graph, r.sm, tgt), weightsPath, weights, err)) { fprintf(stderr, "cnnc: error: %s\n", err.c_str()); return 1; }
  interop::OnnxExportOptions o;
  o.opset = opset;
  o.producerVersion = CNNC_VERSION;
  if (!interop::exportOnnx(r.graph, weights, o, bytes, err) || !writeAtomically(output, bytes, err)) {
    fprintf(stderr, "cnnc: error: %s\n", err.c_str());
    return 1;
  }
  fprintf(stderr, "cnnc: %s -> %s: ONNX opset %d, %zu initializers, %.1f MB\n", r.graph.name.c_str(), output.c_str(), opset, weights.size(), bytes.size() / 1e6);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // `cnnc plot LOG...` has its own command line (the main one requires a .cnn file).
  if (argc > 1 && strcmp(argv[1], "plot") == 0) return runPlot(argc, argv);
  if (argc > 1 && strcmp(argv[1], "tune") == 0) return runTune(argc, argv);
  if (argc > 1 && strcmp(argv[1], "import") == 0) return runImport(argc, argv);
  CLI::App app{"cnnc: compiles .cnn network descriptions (see docs/language.md)", "cnnc"};
  std::string input, emit, output, network, color = "auto", target = "host", cacheDir, tuningDb = codegen::defaultTuningDbPath();
  int jobs = 0;
  bool verbose = false;
  std::vector<std::string> defines;
  bool summary = false, noWarn = false, werror = false, inferenceOnly = false;
  app.add_option("file", input, "the .cnn source")->required();
  app.add_option("--emit", emit,
                 "print a stage instead of compiling (ast, graph, params, dot, plan, train-plan), or write one to -o: lib (a static library + C header in "
                 "the -o folder), python (a shared library + the module cnnc_net.py in the -o folder), onnx (an ONNX model)")
      ->check(CLI::IsMember({"ast", "graph", "params", "dot", "plan", "train-plan", "lib", "python", "onnx"}));
  std::string weightsPath;
  int opset = 13;
  app.add_option("--weights", weightsPath, "with --emit=onnx: the weights to export (safetensors, state_dict names; default: the initial weights, seed 0)");
  app.add_option("--opset", opset, "with --emit=onnx: the ONNX opset to write")->capture_default_str()->check(CLI::Range(13, 17));
  app.add_flag("--summary", summary, "print a per-layer table with shapes, parameters and MACs");
  app.add_option("-o,--output", output, "the executable to build (with --emit: where to write it; for dot: .dot, .svg, .png or .pdf)");
  app.add_option("--target", target, "host (default), host-cuda[-cuda_capability_NN] (NVIDIA GPU), or a Halide target string, e.g. x86-64-linux-avx2 or arm-64-linux (aarch64, cross-compiled)");
  app.add_option("--cache-dir", cacheDir, "compiled-kernel cache (default: $XDG_CACHE_HOME/cnnc)");
  app.add_option("--tuning-db", tuningDb, "schedules measured by `cnnc tune` (default: $CNNC_TUNING_DB or ~/.cache/cnnc/tuning.jsonl; none: defaults only)");
  app.add_option("-j,--jobs", jobs, "parallel kernel compiles (default: number of cores)")->check(CLI::Range(1, 256));
  app.add_flag("--inference-only", inferenceOnly,
               "leave out the training step and its kernels (about half the compile time; `X train` then says how to get it back)");
  app.add_flag("-v,--verbose", verbose, "show each kernel compile and the link command");
  app.add_option("-D,--define", defines, "override a network parameter: -D classes=10")->type_name("NAME=VALUE");
  std::string inputShape;
  app.add_option("--input-shape", inputShape, "compile for another input size, e.g. 3,160,160 (same channels)")->type_name("C,H,W");
  app.add_option("--network", network, "the network to compile when the file declares several");
  app.add_flag("-w", noWarn, "suppress warnings");
  app.add_flag("--Werror,-W", werror, "treat warnings as errors");
  app.add_option("--color", color, "colour diagnostics: auto, always or never")->check(CLI::IsMember({"auto", "always", "never"}));
  app.set_version_flag("--version", [] {
    // Where this cnnc takes what it links and imports: an installed tree or its build tree.
    std::string v = std::string("cnnc ") + CNNC_VERSION + " (ANTLR 4 front end, Halide 14)\n";
    codegen::Toolchain tc;
    std::string err;
    codegen::AotOptions host;
    if (codegen::toolchainFor(host, tc, err)) v += "runtime     " + tc.runtimeLib + "\n";
    std::string path;
    for (const std::string& dir : importSearchPath()) path += (path.empty() ? "" : ":") + dir;
    v += "import path " + (path.empty() ? std::string("(none: set CNNC_PATH)") : path);
    return v;
  });
  app.footer("Exit status: 0 success, 1 errors in the input, 2 bad command line.\nExample: cnnc nets/resnet18.cnn --summary\n"
             "Training curves: cnnc plot RUN1/log.jsonl RUN2/log.jsonl... -o OUT.svg draws several runs in one picture (cnnc plot --help)\n"
             "Tuning: cnnc tune NET.cnn --budget 10m measures schedules for this machine (cnnc tune --help)\n"
             "ONNX: cnnc import MODEL.onnx -o NET.cnn writes a .cnn and its weights (cnnc import --help); --emit=onnx goes the other way\n"
             "Environment: CNNC_STMT_DIR=DIR also writes each kernel compiled as Halide's lowered statement (docs/cli.md)");
  // Accept the gcc/clang spelling -Werror, which CLI11 would read as -W -e -r -r -o -r.
  std::vector<std::string> args(argv + 1, argv + argc);
  for (auto& a : args)
    if (a == "-Werror") a = "--Werror";
  std::reverse(args.begin(), args.end());
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  FrontendOptions fo;
  fo.elab.network = network;
  fo.warningsAsErrors = werror;
  fo.suppressWarnings = noWarn;
  fo.color = color == "always" || (color == "auto" && isatty(2) && getenv("NO_COLOR") == nullptr);
  fo.stopAfterParse = emit == "ast";
  if (!applyNetworkFlags(defines, inputShape, fo)) return 2;

  FrontendResult r;
  runFrontend(input, fo, r);
  if (!r.ok) {
    int n = r.diags->errors();
    if (n > 1) fprintf(stderr, "%d errors generated.\n", n);
    return 1;
  }

  std::string text;
  if (emit == "ast") {
    for (const auto& f : r.program.files) text += printAst(*f, r.sm);
  } else if (emit == "graph") {
    text = printGraph(r.graph, r.sm);
  } else if (emit == "params") {
    text = printParams(r.graph);
  } else if (emit == "dot") {
    text = printDot(r.graph);
  } else if (summary) {
    text = printSummary(r.graph);
  } else if (emit == "plan") {
    codegen::Plan plan = codegen::buildInferencePlan(r.graph);
    std::string tgt, err;
    if (!codegen::resolveTarget(target, tgt, err)) { fprintf(stderr, "cnnc: error: %s\n", err.c_str()); return 1; }
    text = codegen::planToText(plan, r.graph);
  } else if (emit == "train-plan") {
    codegen::TrainPlan tp;
    std::string err;
    if (!codegen::buildTrainingPlan(r.graph, tp, err)) { fprintf(stderr, "cnnc: error: %s\n", err.c_str()); return 1; }
    text = codegen::planToText(tp.plan, r.graph);
    std::string bad = codegen::verifyPlan(tp.plan);
    if (!bad.empty()) text += "memory plan error: " + bad + "\n";
  } else if (emit == "onnx") {
    return writeOnnx(r, output, target, weightsPath, opset);
  } else if (emit == "lib" || emit == "python" || (emit.empty() && !output.empty())) {
    if (output.empty() && emit == "lib") { fprintf(stderr, "cnnc: error: --emit=lib needs -o FOLDER\n"); return 2; }
    if (output.empty()) { fprintf(stderr, "cnnc: error: --emit=python needs -o FOLDER (it gets lib<net>.so and cnnc_net.py)\n"); return 2; }
    codegen::CompileOptions o;
    o.output = output;
    o.asLibrary = !emit.empty();
    o.asPython = emit == "python";
    o.inferenceOnly = inferenceOnly;
    o.target = target;
    o.cacheDir = cacheDir;
    o.jobs = jobs;
    o.verbose = verbose;
    o.tuningDbPath = tuningDb;
    return compileNetwork(r, o);
  } else {
    return 0;  // checked, nothing else asked for
  }
  if (summary && !emit.empty()) text += printSummary(r.graph);

  if (output.empty() || output == "-") {
    fwrite(text.data(), 1, text.size(), stdout);
    if (fflush(stdout) != 0) { fprintf(stderr, "cnnc: error: cannot write output: %s\n", strerror(errno)); return 1; }
    return 0;
  }
  std::string err;
  std::string ext = fs::path(output).extension().string();
  bool ok;
  if (emit == "dot" && (ext == ".svg" || ext == ".png" || ext == ".pdf")) ok = renderDot(text, output, ext.substr(1), err);
  else ok = writeAtomically(output, text, err);
  if (!ok) {
    fprintf(stderr, "cnnc: error: %s\n", err.c_str());
    return 1;
  }
  return 0;
}
