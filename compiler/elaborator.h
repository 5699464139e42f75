// elaborator.h: internal state of the semantic pass (elaborate.cpp, eval.cpp, layers.cpp).
#pragma once
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "elaborate.h"
#include "value.h"

namespace cnnc {

// A lexical scope: block parameters, lets and loop variables.
struct Scope {
  struct Entry {
    Value value;
    SourceLoc loc;
    bool used = false;
    const Decl* paramOf = nullptr;  // set for block/network parameters
  };
  std::map<std::string, Entry> vars;
  Scope* parent = nullptr;
  Dims in;            // shape of the enclosing block instance's input
  bool hasIn = false;  // set on block and network scopes; `in` is empty there after an error
};

// The output of a statement: a node and its shape, or poison after an error so that later
// statements skip their checks instead of reporting follow-on errors.
struct Tensor {
  int node = -1;
  Dims shape;
  bool poison = false;
};

// The module (PyTorch nn.Module) that statements are being named in.
struct ModuleCtx {
  int module = 0;
  std::string path;
  int counter = 0;
  std::set<std::string> names;
};

// A tensor named by `keep NAME` (a long skip), visible to `from NAME` later in the same block instance.
struct Kept {
  Tensor t;
  SourceLoc loc;
};

// The kept tensors of one block instance (or of the network), and whose body it runs.
struct KeptScope {
  const Decl* decl = nullptr;
  std::map<std::string, Kept> names;
};

// One block instantiation: used for recursion checks and "in block ... instantiated at" notes.
struct Frame {
  const Decl* decl;
  SourceLoc site;
};

class Elaborator {
public:
  Elaborator(const Program& p, const SourceManager& sm, Diagnostics& d, const ElabOptions& o)
      : prog_(p), sm_(sm), diags_(d), opts_(o) {}
  bool run(Graph& g);

  // eval.cpp
  Value eval(const Expr& e, Scope& s);
  bool lookup(const std::string& name, Scope& s, Value& out);

  // Messages at a location inside the current block stack.
  void error(SourceLoc loc, const std::string& msg, const std::string& hint = "");
  void warning(SourceLoc loc, const std::string& msg, const std::string& hint = "");

private:
  friend struct LayerBuilder;
  enum class Mode { Chain, Branch };

  // elaborate.cpp
  const Decl* chooseNetwork();
  void collectDecls();
  Tensor body(const Body& b, Tensor x, Scope& s, ModuleCtx& m, Mode mode, std::vector<Tensor>* branches);
  Tensor stmt(const Stmt& st, Tensor x, Scope& s, ModuleCtx& m, Mode mode, std::vector<Tensor>* branches);
  Tensor unit(const Stmt& st, Tensor x, Scope& s, ModuleCtx& m);
  // With `splice` (`use`), the block's statements run in the caller's module and mode: inside
  // concat/add/mul each becomes a branch of its own, as if written in place.
  Tensor callBlock(const Decl* d, const Call& c, Tensor x, Scope& s, ModuleCtx& m, const std::string& seg, bool splice,
                   Mode mode = Mode::Chain, std::vector<Tensor>* branches = nullptr);
  const Decl* resolveBlock(const std::string& name, Scope& s, SourceLoc loc, bool& isError);
  bool bindParams(const Decl* d, const Call& c, Scope& caller, Scope& callee);
  Tensor join(OpKind op, const std::vector<Tensor>& parts, SourceLoc loc, ModuleCtx& m, bool residual);
  std::string segment(const Stmt& st, Scope& s, ModuleCtx& m, bool isModule, bool& ok);
  std::string labelText(const Stmt& st, Scope& s, bool& ok);
  void diagnoseMissingKeep(const Stmt& st);  // `from NAME` with no NAME kept in this scope
  int newModule(const std::string& path, const std::string& kind, int parent);
  void warnUnused();
  // elaborate_recipe.cpp: checks `recipe { ... }` and stores it in the graph.
  void recipe(const Stmt& st, Scope& s);

  // layers.cpp
  Tensor layer(const Call& c, Tensor x, Scope& s, ModuleCtx& m, const std::string& seg);
  bool isBuiltin(const std::string& name) const;

public:
  int addNode(OpKind op, const std::string& name, std::vector<int> inputs, Dims shape, SourceLoc loc, int module);
  std::string uniqueName(const std::string& base);
  std::vector<std::string> builtinNames() const;

  const Program& prog_;
  const SourceManager& sm_;
  Diagnostics& diags_;
  const ElabOptions& opts_;
  Graph* g_ = nullptr;
  std::map<std::string, const Decl*> decls_;
  std::set<const Decl*> usedDecls_;
  std::set<std::pair<const Decl*, std::string>> usedParams_;
  std::vector<Frame> stack_;
  std::vector<KeptScope> kept_;                            // innermost block instance last
  std::map<int, std::pair<std::string, SourceLoc>> keptNodes_;  // node -> its kept name, for messages
  std::vector<std::pair<const Decl*, std::pair<std::string, SourceLoc>>> allKept_;  // every keep so far
  Scope globals_;
  std::set<std::string> nodeNames_;
  int64_t steps_ = 0;   // statements executed: bounds loops that create nothing
  bool aborted_ = false;  // a hard limit was hit; stop elaborating
};

// Closest candidate by edit distance, or "" when none is close.
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace cnnc
