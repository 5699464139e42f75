// fuzz_frontend.cpp: libFuzzer target for the whole front end (bytes -> parse -> elaborate).
// Build: cmake -DCNNC_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++-14 (see scripts/fuzz.sh).
#include <cstddef>
#include <cstdint>
#include <string>

#include "elaborate.h"
#include "graph.h"
#include "parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cnnc;
  SourceManager sm;
  Diagnostics diags(sm);
  diags.suppressWarnings = true;
  diags.print = false;
  int id = sm.add("fuzz.cnn", std::string(reinterpret_cast<const char*>(data), size));
  auto ast = parseSource(id, sm, diags);
  if (!ast) return 0;
  Program prog;
  prog.files.push_back(std::move(ast));
  Graph g;
  ElabOptions opts;
  if (elaborate(prog, sm, diags, opts, g)) {
    std::string summary = printSummary(g);  // what `cnnc FILE --summary` prints; must not crash
    (void)summary;
  }
  return 0;
}
