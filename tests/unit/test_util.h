// test_util.h: runs the front end on source text held in memory.
#pragma once
#include <memory>
#include <string>

#include "elaborate.h"
#include "parser.h"

namespace cnnc::test {

// Everything a compile produced; stderr output is captured in `errors` via Diagnostics::all().
struct Compiled {
  SourceManager sm;
  std::unique_ptr<Diagnostics> diags;
  Program prog;
  Graph graph;
  bool ok = false;
  // All error and warning messages joined by newlines (without source excerpts).
  std::string messages() const {
    std::string s;
    for (const auto& d : diags->all()) s += d.message + "\n";
    return s;
  }
};

inline std::unique_ptr<Compiled> compile(const std::string& text, ElabOptions opts = {}) {
  auto c = std::make_unique<Compiled>();
  c->diags = std::make_unique<Diagnostics>(c->sm);
  c->diags->print = false;
  int id = c->sm.add("test.cnn", text);
  auto ast = parseSource(id, c->sm, *c->diags);
  if (!ast) return c;
  c->prog.files.push_back(std::move(ast));
  c->ok = elaborate(c->prog, c->sm, *c->diags, opts, c->graph);
  return c;
}

}  // namespace cnnc::test
