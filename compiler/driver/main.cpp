// main.cpp: the `cnnc` command line.
//
// Exit status: 0 success, 1 errors in the input (reported on stderr), 2 bad command line.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "frontend.h"

#ifndef CNNC_VERSION
#define CNNC_VERSION "0.0.0"
#endif

namespace fs = std::filesystem;
using namespace cnnc;

namespace {

// Writes `data` to `path` through a temporary file and a rename, so a failed or interrupted
// write never leaves a half-written output behind.
bool writeAtomically(const std::string& path, const std::string& data, std::string& err) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  FILE* f = fopen(tmp.c_str(), "wb");
  if (!f) { err = std::string("cannot write '") + path + "': " + strerror(errno); return false; }
  bool ok = fwrite(data.data(), 1, data.size(), f) == data.size();
  ok = (fflush(f) == 0) && ok;
  ok = (fsync(fileno(f)) == 0) && ok;
  int e = errno;
  ok = (fclose(f) == 0) && ok;
  if (!ok) {
    unlink(tmp.c_str());
    err = std::string("cannot write '") + path + "': " + strerror(e ? e : EIO);
    return false;
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    err = std::string("cannot write '") + path + "': " + strerror(errno);
    unlink(tmp.c_str());
    return false;
  }
  return true;
}

// Renders DOT text to an image format with Graphviz's `dot`.
bool renderDot(const std::string& dot, const std::string& path, const std::string& fmt, std::string& err) {
  std::string tmpDot = path + ".dot.tmp." + std::to_string(getpid());
  if (!writeAtomically(tmpDot, dot, err)) return false;
  std::string tmpOut = path + ".tmp." + std::to_string(getpid());
  std::string cmd = "dot -T" + fmt + " '" + tmpDot + "' -o '" + tmpOut + "' 2>&1";
  int rc = system(cmd.c_str());
  unlink(tmpDot.c_str());
  if (rc != 0) {
    unlink(tmpOut.c_str());
    err = "Graphviz 'dot' failed (exit " + std::to_string(WEXITSTATUS(rc)) + ")";
    if (WEXITSTATUS(rc) == 127) err += ": install it with 'apt-get install graphviz', or write .dot instead";
    return false;
  }
  if (rename(tmpOut.c_str(), path.c_str()) != 0) {
    err = std::string("cannot write '") + path + "': " + strerror(errno);
    unlink(tmpOut.c_str());
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cnnc: compiles .cnn network descriptions (see docs/language.md)", "cnnc"};
  std::string input, emit, output, network, color = "auto";
  std::vector<std::string> defines;
  bool summary = false, noWarn = false, werror = false;
  app.add_option("file", input, "the .cnn source")->required();
  app.add_option("--emit", emit, "print a stage instead of compiling: ast, graph, params or dot")
      ->check(CLI::IsMember({"ast", "graph", "params", "dot"}));
  app.add_flag("--summary", summary, "print a per-layer table with shapes, parameters and MACs");
  app.add_option("-o,--output", output, "write the output here (with --emit=dot: .dot, .svg, .png or .pdf)");
  app.add_option("-D,--define", defines, "override a network parameter: -D classes=10")->type_name("NAME=VALUE");
  app.add_option("--network", network, "the network to compile when the file declares several");
  app.add_flag("-w", noWarn, "suppress warnings");
  app.add_flag("--Werror,-W", werror, "treat warnings as errors");
  app.add_option("--color", color, "colour diagnostics: auto, always or never")->check(CLI::IsMember({"auto", "always", "never"}));
  app.set_version_flag("--version", std::string("cnnc ") + CNNC_VERSION + " (ANTLR 4 front end)");
  app.footer("Exit status: 0 success, 1 errors in the input, 2 bad command line.\nExample: cnnc nets/resnet18.cnn --summary");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  FrontendOptions fo;
  fo.elab.network = network;
  fo.warningsAsErrors = werror;
  fo.suppressWarnings = noWarn;
  fo.color = color == "always" || (color == "auto" && isatty(2) && getenv("NO_COLOR") == nullptr);
  for (const auto& d : defines) {
    auto eq = d.find('=');
    if (eq == std::string::npos || eq == 0) {
      fprintf(stderr, "cnnc: error: -D %s: expected NAME=VALUE, e.g. -D classes=10\n", d.c_str());
      return 2;
    }
    fo.elab.overrides[d.substr(0, eq)] = d.substr(eq + 1);
  }
  fo.stopAfterParse = emit == "ast";

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
  } else if (!output.empty()) {
    fprintf(stderr, "cnnc: error: code generation (-o without --emit) is not available in this version; it arrives with the Halide back end\n"
                    "hint: use --summary, --emit=graph or --emit=dot -o net.svg\n");
    return 1;
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
