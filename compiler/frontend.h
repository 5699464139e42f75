// frontend.h: the whole front end behind one call: load, parse, elaborate.
#pragma once
#include <memory>
#include <string>

#include "diagnostics.h"
#include "elaborate.h"
#include "graph.h"
#include "parser.h"

namespace cnnc {

struct FrontendResult {
  SourceManager sm;
  std::unique_ptr<Diagnostics> diags;
  Program program;
  Graph graph;
  bool parsed = false;
  bool ok = false;
};

struct FrontendOptions {
  ElabOptions elab;
  bool stopAfterParse = false;
  bool warningsAsErrors = false;
  bool suppressWarnings = false;
  bool color = false;
};

// Runs on a thread with a large stack: the generated parser recurses per nesting level, so deep
// (but bounded) inputs must never overflow the main thread's 8 MiB.
void runFrontend(const std::string& path, const FrontendOptions& opts, FrontendResult& out);

}  // namespace cnnc
