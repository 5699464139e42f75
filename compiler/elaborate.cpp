// elaborate.cpp: from the AST of a network to the graph IR.
//
// Algorithm:
// 1. Collect every block and network of every loaded file into one global table, rejecting
//    duplicates and blocks that shadow a built-in layer; evaluate top-level lets.
// 2. Pick the network (the only one in the main file, or --network) and bind its parameters:
//    defaults, then -D overrides.
// 3. Walk the network body as an interpreter would, carrying the current tensor. Layers append
//    nodes; block calls bind arguments in a fresh scope whose `in` is the current shape; `seq`
//    and block instances open a new naming module; residual/concat/add evaluate their bodies
//    from the same input and join the results.
// 4. Each statement that makes a layer or module takes the next position of its module; its name
//    is its label or that position, so names equal PyTorch's state_dict keys.
// 5. After an error the tensor becomes poison: later statements still check their arguments,
//    but skip shape checks, so every independent error is reported once.
// 6. Finally, warn about blocks and parameters of the main file that were never used.
#include <algorithm>
#include <cmath>

#include "elaborator.h"
#include "shape_rules.h"

namespace cnnc {

void Elaborator::error(SourceLoc loc, const std::string& msg, const std::string& hint) {
  Diagnostic d;
  d.loc = loc;
  d.message = msg;
  d.hint = hint;
  for (auto it = stack_.rbegin(); it != stack_.rend(); ++it)
    d.notes.push_back("in block '" + it->decl->name + "' instantiated at " + sm_.where(it->site));
  diags_.report(std::move(d));
}

void Elaborator::warning(SourceLoc loc, const std::string& msg, const std::string& hint) {
  Diagnostic d;
  d.severity = Severity::Warning;
  d.loc = loc;
  d.message = msg;
  d.hint = hint;
  diags_.report(std::move(d));
}

bool elaborate(const Program& prog, const SourceManager& sm, Diagnostics& diags, const ElabOptions& opts, Graph& out) {
  Elaborator e(prog, sm, diags, opts);
  return e.run(out);
}

void Elaborator::collectDecls() {
  // Imports are loaded after their importer, so walking files backwards defines dependencies first.
  for (auto it = prog_.files.rbegin(); it != prog_.files.rend(); ++it) {
    for (const auto& d : (*it)->decls) {
      if (isBuiltin(d->name) || d->name == "input") {
        error(d->loc, std::string(d->kind == Decl::Block ? "block" : "network") + " '" + d->name + "' has the name of a built-in layer",
              "rename it, e.g. '" + d->name + "_block'");
        continue;
      }
      auto [pos, fresh] = decls_.emplace(d->name, d.get());
      if (!fresh) {
        Diagnostic dg;
        dg.loc = d->loc;
        dg.message = "redefinition of '" + d->name + "'";
        dg.notes.push_back("previous definition at " + sm_.where(pos->second->loc));
        diags_.report(dg);
      }
      std::set<std::string> seen;
      for (const auto& p : d->params)
        if (!seen.insert(p.name).second) error(p.loc, "parameter '" + p.name + "' is declared twice");
    }
    for (const auto& l : (*it)->lets) {
      if (globals_.vars.count(l->name)) { error(l->loc, "redefinition of '" + l->name + "'"); continue; }
      Value v = eval(*l->expr, globals_);
      globals_.vars[l->name] = {v, l->loc, false, nullptr};
    }
  }
}

const Decl* Elaborator::chooseNetwork() {
  const FileAst& main = *prog_.files[0];
  std::vector<const Decl*> nets;
  for (const auto& d : main.decls) if (d->kind == Decl::Network) nets.push_back(d.get());
  const std::string& path = sm_.file(main.file).path;
  if (!opts_.network.empty()) {
    auto it = decls_.find(opts_.network);
    if (it != decls_.end() && it->second->kind == Decl::Network) return it->second;
    std::vector<std::string> names;
    for (auto* n : nets) names.push_back(n->name);
    std::string c = closest(opts_.network, names);
    diags_.error({}, "no network named '" + opts_.network + "' in " + path, c.empty() ? "" : "did you mean '" + c + "'?");
    return nullptr;
  }
  if (nets.size() == 1) return nets[0];
  if (nets.empty()) {
    bool blank = sm_.file(main.file).text.find_first_not_of(" \t\r\n") == std::string::npos;
    diags_.error({main.file, 1, 1, 1}, blank ? "file is empty: expected a network" : "no network in this file",
                 "declare one: network name(classes = 10) { input(3, 32, 32) ... }");
    return nullptr;
  }
  std::string names;
  for (auto* n : nets) names += (names.empty() ? "" : ", ") + n->name;
  diags_.error({}, path + " declares several networks (" + names + ")", "pick one with --network NAME");
  return nullptr;
}

// Parses a -D value: an integer, a float or a bool.
static bool parseOverride(const std::string& text, Value& v) {
  if (text == "true" || text == "false") { v = Value::ofBool(text == "true"); return true; }
  char* end = nullptr;
  errno = 0;
  long long i = strtoll(text.c_str(), &end, 10);
  if (!text.empty() && *end == 0) {
    if (errno == ERANGE) return false;  // an integer, but too large: not a float in disguise
    v = Value::ofInt(i);
    return true;
  }
  double f = strtod(text.c_str(), &end);
  if (!text.empty() && *end == 0 && std::isfinite(f)) { v = Value::ofFloat(f); return true; }
  return false;
}

int Elaborator::newModule(const std::string& path, const std::string& kind, int parent) {
  g_->modules.push_back({path, kind, parent});
  return (int)g_->modules.size() - 1;
}

std::string Elaborator::uniqueName(const std::string& base) {
  std::string n = base.empty() ? "node" : base;
  if (nodeNames_.insert(n).second) return n;
  for (int i = 2;; ++i) {
    std::string c = n + "#" + std::to_string(i);
    if (nodeNames_.insert(c).second) return c;
  }
}

int Elaborator::addNode(OpKind op, const std::string& name, std::vector<int> inputs, Dims shape, SourceLoc loc, int module) {
  Node n;
  n.id = (int)g_->nodes.size();
  n.op = op;
  n.name = uniqueName(name);
  n.inputs = std::move(inputs);
  n.shape = std::move(shape);
  n.loc = loc;
  for (auto it = stack_.rbegin(); it != stack_.rend(); ++it) n.callStack.push_back(it->site);
  n.module = module;
  g_->nodes.push_back(std::move(n));
  if ((int64_t)g_->nodes.size() > opts_.maxNodes && !aborted_) {
    error(loc, "the network has more than " + std::to_string(opts_.maxNodes) + " layers", "check repetition counts and loops");
    aborted_ = true;
  }
  return (int)g_->nodes.size() - 1;
}

bool Elaborator::run(Graph& g) {
  g_ = &g;
  collectDecls();
  if (diags_.errors()) return false;
  const Decl* net = chooseNetwork();
  if (!net) return false;
  usedDecls_.insert(net);
  g.name = net->name;
  g.file = sm_.file(prog_.files[0]->file).path;
  newModule("", "network " + net->name, -1);

  Scope scope;
  scope.parent = nullptr;
  for (const auto& p : net->params) {
    Value v;
    if (p.defaultValue) v = eval(*p.defaultValue, globals_);
    else if (!opts_.overrides.count(p.name)) error(p.loc, "network parameter '" + p.name + "' has no default", "give it one, or pass -D " + p.name + "=VALUE");
    scope.vars[p.name] = {v, p.loc, false, net};
  }
  for (const auto& [k, text] : opts_.overrides) {
    auto it = scope.vars.find(k);
    if (it == scope.vars.end()) {
      std::vector<std::string> names;
      for (const auto& p : net->params) names.push_back(p.name);
      std::string c = closest(k, names);
      diags_.error({}, "-D " + k + ": network '" + net->name + "' has no parameter '" + k + "'",
                   c.empty() ? "its parameters are: " + [&] { std::string s; for (auto& n : names) s += (s.empty() ? "" : ", ") + n; return s.empty() ? std::string("(none)") : s; }()
                             : "did you mean '" + c + "'?");
      continue;
    }
    Value v;
    if (!parseOverride(text, v)) {
      diags_.error({}, "-D " + k + "=" + text + ": the value must be an integer (at most 2^63-1), a float, true or false");
      continue;
    }
    it->second.value = v;
  }
  if (diags_.errors()) return false;

  // The network's layers start with input(...); its recipe may stand anywhere among them.
  std::vector<const Stmt*> b, recipes;
  for (const auto& st : net->body) (st->kind == Stmt::Recipe ? recipes : b).push_back(st.get());
  if (b.empty() || b[0]->kind != Stmt::Layer || b[0]->call.callee != "input") {
    error(b.empty() ? net->loc : b[0]->loc, "a network must start with input(C, H, W)",
          "e.g. input(3, 32, 32) for colour 32x32 images; the batch size is chosen at run time");
    return false;
  }
  ModuleCtx top;
  kept_.push_back({net, {}});
  Tensor x = layer(b[0]->call, Tensor{}, scope, top, "input");
  if (x.poison) return false;
  scope.in = x.shape;
  scope.hasIn = true;
  Tensor y = x;
  for (size_t i = 1; i < b.size() && !aborted_; ++i) y = stmt(*b[i], y, scope, top, Mode::Chain, nullptr);
  g.output = y.poison ? -1 : y.node;
  for (size_t i = 0; i < recipes.size(); ++i) {
    if (i > 0) {
      error(recipes[i]->loc, "network '" + net->name + "' has a recipe already (at " + sm_.where(recipes[0]->loc) + ")",
            "a network has one recipe: merge the two");
      continue;
    }
    recipe(*recipes[i], scope);
  }
  orderParamsAsPyTorch(g);
  if (!diags_.errors()) warnUnused();
  return diags_.errors() == 0 && g.output >= 0;
}

Tensor Elaborator::body(const Body& b, Tensor x, Scope& s, ModuleCtx& m, Mode mode, std::vector<Tensor>* branches) {
  for (const auto& st : b) {
    if (aborted_) break;
    x = stmt(*st, x, s, m, mode, branches);
  }
  return x;
}

// A template label's value: its literal pieces and the values of its `{expr}`s (ints or strings).
std::string Elaborator::labelText(const Stmt& st, Scope& s, bool& ok) {
  ok = true;
  if (st.labelParts.empty()) return st.label;
  std::string out;
  for (const LabelPart& p : st.labelParts) {
    if (!p.expr) { out += p.text; continue; }
    Value v = eval(*p.expr, s);
    if (v.kind == Value::None) { ok = false; return ""; }
    if (v.kind == Value::Int) out += std::to_string(v.i);
    else if (v.kind == Value::String) out += v.s;
    else {
      error(p.expr->loc, std::string("a label's {} needs an integer or a string, got ") + kindName(v.kind));
      ok = false;
      return "";
    }
  }
  for (char ch : out)
    if (!(isalnum((unsigned char)ch) || ch == '_' || ch == '-')) {
      error(st.labelLoc, "label " + st.label + " gives '" + out + "', which holds '" + std::string(1, ch) + "'",
            "a label may hold letters, digits, '_' and '-'");
      ok = false;
      return "";
    }
  if (out.empty()) {
    error(st.labelLoc, "label " + st.label + " gives an empty name");
    ok = false;
  }
  return out;
}

std::string Elaborator::segment(const Stmt& st, Scope& s, ModuleCtx& m, bool isModule, bool& ok) {
  int index = m.counter++;
  std::string label = labelText(st, s, ok);
  if (!ok) return "";
  std::string seg = label.empty() ? std::to_string(index) : label;
  // A label names one module or layer of its parent, as an attribute does in PyTorch.
  if (!m.names.insert(seg).second && (isModule || !label.empty())) {
    error(st.labelLoc.valid() ? st.labelLoc : st.loc,
          "name '" + seg + "' is already used in " + (m.path.empty() ? "the network" : "module '" + m.path + "'"),
          "give this statement another label");
    ok = false;
  }
  return seg;
}

Tensor Elaborator::stmt(const Stmt& st, Tensor x, Scope& s, ModuleCtx& m, Mode mode, std::vector<Tensor>* branches) {
  if (++steps_ > 1000000) {
    if (!aborted_) error(st.loc, "elaboration takes more than 1,000,000 steps", "check loop and repetition counts");
    aborted_ = true;
    return x;
  }
  switch (st.kind) {
    case Stmt::Let: {
      if (s.vars.count(st.name)) { error(st.loc, "'" + st.name + "' is already defined in this scope"); return x; }
      Value v = eval(*st.expr, s);
      s.vars[st.name] = {v, st.loc, false, nullptr};
      return x;
    }
    case Stmt::If: {
      Value c = eval(*st.expr, s);
      if (c.kind == Value::None) return Tensor{-1, {}, true};
      if (c.kind != Value::Bool) {
        error(st.expr->loc, std::string("condition must be a bool, got ") + kindName(c.kind) + " (" + valueStr(c) + ")",
              "compare explicitly, e.g. 'if n != 0'");
        return Tensor{-1, {}, true};
      }
      Scope inner;
      inner.parent = &s;
      return body(c.b ? st.body : st.body2, x, inner, m, mode, branches);
    }
    case Stmt::For: {
      Value r = eval(*st.expr, s);
      std::vector<Value> items;
      if (r.kind == Value::Int) {
        if (r.i < 0 || r.i > 100000) { error(st.expr->loc, "loop count " + valueStr(r) + " is out of range (0 to 100000)"); return Tensor{-1, {}, true}; }
        for (int64_t i = 0; i < r.i; ++i) items.push_back(Value::ofInt(i));
      } else if (r.kind == Value::List) {
        items = r.list;
      } else {
        if (r.kind != Value::None) error(st.expr->loc, std::string("'for' needs a list or a count, got ") + kindName(r.kind));
        return Tensor{-1, {}, true};
      }
      for (const auto& it : items) {
        if (aborted_) break;
        Scope inner;
        inner.parent = &s;
        inner.vars[st.name] = {it, st.loc, true, nullptr};
        x = body(st.body, x, inner, m, mode, branches);
      }
      return x;
    }
    case Stmt::Residual: {
      Scope a, b;
      a.parent = b.parent = &s;
      Tensor main = body(st.body, x, a, m, Mode::Chain, nullptr);
      Tensor sc = st.hasShortcut ? body(st.body2, x, b, m, Mode::Chain, nullptr) : x;
      Tensor out = join(OpKind::Add, {main, sc}, st.loc, m, true);
      if (mode == Mode::Branch && branches) branches->push_back(out);
      return mode == Mode::Branch ? x : out;
    }
    case Stmt::Recipe:
      error(st.loc, stack_.empty() ? "a recipe belongs directly in the network's body, not inside another statement"
                                   : std::string("a recipe belongs in the network being compiled, not in ") +
                                         (stack_.back().decl->kind == Decl::Network ? "network '" : "block '") + stack_.back().decl->name + "'",
            "move `recipe { ... }` to the top level of the network that trains with it");
      return x;
    case Stmt::Keep: {
      // Names the tensor at this point of the chain; no node, no position.
      auto& scope = kept_.back().names;
      auto it = scope.find(st.name);
      if (it != scope.end()) {
        error(st.loc, "a tensor named '" + st.name + "' is already kept in this " + (kept_.size() == 1 ? "network" : "block") + ", at " + sm_.where(it->second.loc),
              (it->second.loc.file == st.loc.file && it->second.loc.line == st.loc.line && it->second.loc.col == st.loc.col) ? "this 'keep' runs more than once (a loop or repetition): give each tensor its own name"
                                                     : "give this tensor another name");
        return x;
      }
      if (!x.poison) {
        scope[st.name] = {x, st.loc};
        keptNodes_[x.node] = {st.name, st.loc};
        allKept_.push_back({kept_.back().decl, {st.name, st.loc}});
      }
      return x;
    }
    case Stmt::From: {
      // The chain (or, in concat/add/mul, this branch) continues from a kept tensor.
      auto& scope = kept_.back().names;
      auto it = scope.find(st.name);
      if (it != scope.end()) {
        if (mode == Mode::Branch && branches) branches->push_back(it->second.t);
        return mode == Mode::Branch ? x : it->second.t;
      }
      diagnoseMissingKeep(st);
      if (mode == Mode::Branch && branches) branches->push_back(Tensor{-1, {}, true});
      return Tensor{-1, {}, true};
    }
    case Stmt::Split: {
      // The channels cut into as many equal chunks as there are branches, chunk i through branch
      // i, the outputs concatenated: ShuffleNetV2's unit is split { identity; branch2: seq { ... } }.
      Scope inner;
      inner.parent = &s;
      Tensor out{-1, {}, true};
      bool ok = true;
      for (const auto& b : st.body)
        if ((b->kind != Stmt::Layer && b->kind != Stmt::Seq) || b->count) {
          error(b->loc, "a branch of split is one layer, block or seq { ... }", "write each branch out: 'if', 'for', 'use' and '* n' cannot make split branches");
          ok = false;
        }
      size_t nb = st.body.size();
      if (ok && nb < 2) {
        error(st.loc, "split needs at least two branches, got " + std::to_string(nb), "e.g. split { identity; seq { conv(c / 2, 1); relu } }");
        ok = false;
      }
      if (ok && !x.poison && x.shape[0] % (int64_t)nb) {
        error(st.loc, "split into " + std::to_string(nb) + " branches needs channels divisible by " + std::to_string(nb) + ", got " + dimsStr(x.shape),
              "change the channels of the layer before it");
        ok = false;
      }
      if (ok && !x.poison) {
        int64_t per = x.shape[0] / (int64_t)nb;
        std::vector<Tensor> parts;
        for (size_t i = 0; i < nb; ++i) {
          Dims d = x.shape;
          d[0] = per;
          int id = addNode(OpKind::Chunk, (m.path.empty() ? "" : m.path + ".") + "chunk", {x.node}, d, st.body[i]->loc, m.module);
          g_->nodes[id].attrs.size = (int64_t)i * per;
          std::vector<Tensor> one;
          stmt(*st.body[i], Tensor{id, d, false}, inner, m, Mode::Branch, &one);
          parts.push_back(one.size() == 1 ? one[0] : Tensor{-1, {}, true});
        }
        out = join(OpKind::Concat, parts, st.loc, m, false);
      }
      if (mode == Mode::Branch && branches) branches->push_back(out);
      return mode == Mode::Branch ? x : out;
    }
    case Stmt::Concat:
    case Stmt::Add:
    case Stmt::Mul: {
      std::vector<Tensor> parts;
      Scope inner;
      inner.parent = &s;
      body(st.body, x, inner, m, Mode::Branch, &parts);
      const char* what = st.kind == Stmt::Concat ? "concat" : st.kind == Stmt::Add ? "add" : "mul";
      Tensor out;
      if (st.kind == Stmt::Mul && parts.size() != 2) {
        // Its backward gives each operand dy times the other: two operands keep that one kernel each.
        error(st.loc, "mul takes two branches, got " + std::to_string(parts.size()),
              parts.size() < 2 ? "e.g. mul { identity; seq { globalavgpool; conv(c / 4, 1); relu; conv(c, 1); sigmoid } }"
                               : "nest them: mul { a; mul { b; c } }");
        out = Tensor{-1, {}, true};
      } else if (parts.empty()) {
        error(st.loc, std::string(what) + " has no branches", "put one layer, block or seq per branch inside the braces");
        out = Tensor{-1, {}, true};
      } else if (parts.size() == 1) {
        out = parts[0];
      } else {
        out = join(st.kind == Stmt::Concat ? OpKind::Concat : st.kind == Stmt::Add ? OpKind::Add : OpKind::Mul, parts, st.loc, m, false);
      }
      if (mode == Mode::Branch && branches) branches->push_back(out);
      return mode == Mode::Branch ? x : out;
    }
    case Stmt::Use: {
      bool bad = false;
      const Decl* d = resolveBlock(st.call.callee, s, st.call.loc, bad);
      if (!d) {
        if (!bad) error(st.call.loc, "'use' needs a block; '" + st.call.callee + "' is " + (isBuiltin(st.call.callee) ? "a built-in layer" : "not defined"),
                        isBuiltin(st.call.callee) ? "write the layer without 'use'" : "");
        return Tensor{-1, {}, true};
      }
      return callBlock(d, st.call, x, s, m, "", true, mode, branches);
    }
    case Stmt::Layer:
    case Stmt::Seq: {
      // A branch that is the input itself (`add { identity; ... }`, SE's `mul { identity; gate }`) is
      // no module in PyTorch, so it takes no position; in a chain, identity stands for nn.Identity.
      if (mode == Mode::Branch && st.kind == Stmt::Layer && st.call.callee == "identity" && st.label.empty() && !st.count && st.call.args.empty() &&
          isBuiltin("identity")) {
        if (branches) branches->push_back(x);
        return x;
      }
      int64_t n = 1;
      if (st.count) {
        Value c = eval(*st.count, s);
        if (c.kind == Value::None) return Tensor{-1, {}, true};
        if (c.kind != Value::Int) { error(st.count->loc, std::string("repeat count must be an integer, got ") + kindName(c.kind)); return Tensor{-1, {}, true}; }
        if (c.i < 0 || c.i > 10000) { error(st.count->loc, "repeat count " + std::to_string(c.i) + " is out of range (0 to 10000)"); return Tensor{-1, {}, true}; }
        n = c.i;
        if (!st.label.empty() && n != 1) {
          error(st.labelLoc, "label '" + st.label + "' would name " + std::to_string(n) + " repeated layers",
                "wrap the repetition in a labelled seq: " + st.label + ": seq { ... * " + std::to_string(n) + " }");
          return Tensor{-1, {}, true};
        }
      }
      Tensor cur = x;
      for (int64_t i = 0; i < n && !aborted_; ++i) {
        Tensor out = unit(st, mode == Mode::Branch ? x : cur, s, m);
        if (mode == Mode::Branch && branches) branches->push_back(out);
        else cur = out;
      }
      return cur;
    }
  }
  return x;
}

const Decl* Elaborator::resolveBlock(const std::string& name, Scope& s, SourceLoc loc, bool& isError) {
  isError = false;
  for (Scope* sc = &s; sc; sc = sc->parent) {
    auto it = sc->vars.find(name);
    if (it != sc->vars.end()) {
      Value v;
      lookup(name, s, v);
      if (v.kind == Value::Block) return v.block;
      error(loc, "'" + name + "' is " + kindName(v.kind) + " (" + valueStr(v) + "), not a block or layer");
      isError = true;
      return nullptr;
    }
  }
  auto it = decls_.find(name);
  if (it == decls_.end()) return nullptr;
  if (it->second->kind == Decl::Network) {
    error(loc, "'" + name + "' is a network; only blocks can be instantiated", "move its body into a block and use it from both networks");
    isError = true;
    return nullptr;
  }
  usedDecls_.insert(it->second);
  return it->second;
}

Tensor Elaborator::unit(const Stmt& st, Tensor x, Scope& s, ModuleCtx& m) {
  if (st.kind == Stmt::Seq) {
    bool ok;
    std::string seg = segment(st, s, m, true, ok);
    if (!ok) return Tensor{-1, {}, true};
    ModuleCtx child;
    child.path = m.path.empty() ? seg : m.path + "." + seg;
    child.module = newModule(child.path, "seq", m.module);
    Scope inner;
    inner.parent = &s;
    if (st.body.empty()) return x;
    return body(st.body, x, inner, child, Mode::Chain, nullptr);
  }
  const Call& c = st.call;
  if (c.callee == "input") {
    error(c.loc, "input(...) may only be the first statement of a network");
    return Tensor{-1, {}, true};
  }
  bool bad = false;
  const Decl* d = resolveBlock(c.callee, s, c.loc, bad);
  if (bad) return Tensor{-1, {}, true};
  if (d) {
    bool ok;
    std::string seg = segment(st, s, m, true, ok);
    if (!ok) return Tensor{-1, {}, true};
    return callBlock(d, c, x, s, m, seg, false);
  }
  if (isBuiltin(c.callee)) {
    bool ok;
    std::string seg = segment(st, s, m, false, ok);
    if (!ok) return Tensor{-1, {}, true};
    return layer(c, x, s, m, seg);
  }
  std::vector<std::string> names = builtinNames();
  for (auto& kv : decls_) if (kv.second->kind == Decl::Block) names.push_back(kv.first);
  for (Scope* sc = &s; sc; sc = sc->parent)
    for (auto& kv : sc->vars) if (kv.second.value.kind == Value::Block) names.push_back(kv.first);
  std::string torch = layerForPyTorchName(c.callee);
  if (!torch.empty()) {
    error(c.loc, "unknown layer or block '" + c.callee + "'", "cnnc writes that layer '" + torch + "' (docs/language.md, section 7)");
    return Tensor{-1, {}, true};
  }
  std::string best = closest(c.callee, names);
  error(c.loc, "unknown layer or block '" + c.callee + "'",
        best.empty() ? "built-in layers are listed in docs/language.md; blocks must be declared or imported" : "did you mean '" + best + "'?");
  return Tensor{-1, {}, true};
}

bool Elaborator::bindParams(const Decl* d, const Call& c, Scope& caller, Scope& callee) {
  bool ok = true;
  size_t pos = 0;
  bool sawKeyword = false;
  std::map<std::string, const Arg*> given;
  for (const auto& a : c.args) {
    if (a.name.empty()) {
      if (sawKeyword) { error(a.loc, "positional argument after a keyword argument"); ok = false; continue; }
      if (pos >= d->params.size()) {
        error(a.loc, "block '" + d->name + "' takes " + std::to_string(d->params.size()) + " argument" + (d->params.size() == 1 ? "" : "s") +
                         ", but more were given");
        ok = false;
        continue;
      }
      given[d->params[pos++].name] = &a;
    } else {
      sawKeyword = true;
      bool known = false;
      for (const auto& p : d->params) known |= p.name == a.name;
      if (!known) {
        std::vector<std::string> names;
        for (const auto& p : d->params) names.push_back(p.name);
        std::string best = closest(a.name, names);
        error(a.loc, "block '" + d->name + "' has no parameter '" + a.name + "'", best.empty() ? "" : "did you mean '" + best + "'?");
        ok = false;
        continue;
      }
      if (given.count(a.name)) { error(a.loc, "argument '" + a.name + "' is given twice"); ok = false; continue; }
      given[a.name] = &a;
    }
  }
  for (const auto& p : d->params) {
    Value v;
    auto it = given.find(p.name);
    if (it != given.end()) {
      v = eval(*it->second->value, caller);
    } else if (p.defaultValue) {
      v = eval(*p.defaultValue, callee);  // defaults may refer to earlier parameters and to 'in'
    } else {
      // After a misspelt keyword the missing argument is most likely that one: say it once.
      if (ok) error(c.loc, "block '" + d->name + "' needs argument '" + p.name + "'", "declared at " + sm_.where(p.loc));
      ok = false;
      continue;
    }
    if (v.kind == Value::None) ok = false;
    callee.vars[p.name] = {v, p.loc, false, d};
  }
  return ok;
}

Tensor Elaborator::callBlock(const Decl* d, const Call& c, Tensor x, Scope& s, ModuleCtx& m, const std::string& seg, bool splice, Mode mode,
                              std::vector<Tensor>* branches) {
  for (const auto& f : stack_)
    if (f.decl == d) {
      std::string chain;
      for (const auto& g : stack_) chain += g.decl->name + " -> ";
      error(c.loc, "block '" + d->name + "' instantiates itself: " + chain + d->name, "blocks cannot be recursive; use repetition or 'for'");
      aborted_ = true;
      return Tensor{-1, {}, true};
    }
  if ((int)stack_.size() >= opts_.maxBlockDepth) {
    error(c.loc, "blocks nested more than " + std::to_string(opts_.maxBlockDepth) + " deep");
    aborted_ = true;
    return Tensor{-1, {}, true};
  }
  Scope callee;
  callee.parent = &globals_;
  callee.in = x.poison ? Dims{} : x.shape;
  callee.hasIn = true;
  // Argument errors belong to the call site, so they are reported before entering the block.
  bool ok = bindParams(d, c, s, callee);
  stack_.push_back({d, c.loc});
  Tensor out{-1, {}, true};
  if (ok) {
    if (splice) {
      out = body(d->body, x, callee, m, mode, branches);
    } else {
      ModuleCtx child;
      child.path = m.path.empty() ? seg : m.path + "." + seg;
      child.module = newModule(child.path, d->name, m.module);
      kept_.push_back({d, {}});  // a block's kept tensors are its own
      out = body(d->body, x, callee, child, Mode::Chain, nullptr);
      kept_.pop_back();
    }
  }
  stack_.pop_back();
  if (!ok && splice && mode == Mode::Branch && branches) branches->push_back(out);  // a failed branch poisons the join
  return out;
}

// Whether `b` (recursively) keeps a tensor named `name`; its location in `at`.
static bool findKeep(const Body& b, const std::string& name, SourceLoc& at) {
  for (const auto& s : b) {
    if (s->kind == Stmt::Keep && s->name == name) { at = s->loc; return true; }
    if (findKeep(s->body, name, at) || findKeep(s->body2, name, at)) return true;
  }
  return false;
}

void Elaborator::diagnoseMissingKeep(const Stmt& st) {
  const Decl* here = kept_.back().decl;
  SourceLoc later;
  if (here && findKeep(here->body, st.name, later) && later.file == st.loc.file &&
      (later.line > st.loc.line || (later.line == st.loc.line && later.col > st.loc.col))) {
    error(st.loc, "'" + st.name + "' is used before it is kept (at " + sm_.where(later) + ")", "a kept tensor can be used only after its 'keep'");
    return;
  }
  for (const auto& [decl, k] : allKept_)
    if (k.first == st.name && decl != here) {
      std::string where = decl && decl->kind == Decl::Block ? "block '" + decl->name + "'" : "the network";
      error(st.loc, "'" + st.name + "' is kept in " + where + " (at " + sm_.where(k.second) + "), not in this " + (kept_.size() == 1 ? "network" : "block"),
            "a kept tensor is visible only in the block (or network) that keeps it: move the 'keep' and the 'from' into one of them");
      return;
    }
  std::vector<std::string> names;
  for (const auto& [n, k] : kept_.back().names) names.push_back(n);
  std::string best = closest(st.name, names);
  error(st.loc, "no tensor named '" + st.name + "' is kept here",
        !best.empty() ? "did you mean '" + best + "'?" : "name one first with 'keep " + st.name + "' at the point of the chain you want to come back to");
}

Tensor Elaborator::join(OpKind op, const std::vector<Tensor>& parts, SourceLoc loc, ModuleCtx& m, bool residual) {
  for (const auto& p : parts) if (p.poison) return Tensor{-1, {}, true};
  Dims shape = parts[0].shape;
  std::vector<int> ins;
  for (const auto& p : parts) ins.push_back(p.node);
  if ((op == OpKind::Add && !residual) || op == OpKind::Mul) {
    // Elementwise with broadcasting: a [C,1,1] gate scales a [C,H,W] tensor (squeeze-and-excitation).
    const char* what = op == OpKind::Add ? "add" : "mul";
    for (size_t i = 1; i < parts.size(); ++i) {
      const Dims& b = parts[i].shape;
      Dims out;
      if (b.size() != shape.size()) {
        const Dims& flat = b.size() < shape.size() ? b : shape;
        const Dims& full = b.size() < shape.size() ? shape : b;
        error(loc, std::string(what) + " of " + dimsStr(shape) + " and " + dimsStr(b) + ": a flat " + dimsStr(flat) + " does not broadcast over " + dimsStr(full),
              "keep the gate [C,1,1]: globalavgpool gives [" + std::to_string(full[0]) + ",1,1]; use conv(c, 1) in it instead of flatten and linear");
        return Tensor{-1, {}, true};
      }
      int bad = broadcastDims(shape, b, out);
      if (bad >= 0) {
        static const char* dimNames[] = {"channels", "heights", "widths"};
        std::string dn = shape.size() == 3 ? dimNames[bad] : "features";
        std::string hint = "each dimension must be equal in every branch, or 1 in some (repeated over the others)";
        bool gate = shape.size() == 3 && ((b[1] == 1 && b[2] == 1) || (shape[1] == 1 && shape[2] == 1));
        if (gate && bad == 0) {
          int64_t want = b[1] == 1 && b[2] == 1 ? shape[0] : b[0];
          hint = "a per-channel gate needs the channels of the tensor it scales: end the gate with conv(" + std::to_string(want) + ", 1)";
        } else if (bad == 0) {
          hint = "give every branch the same number of " + dn + " (1 repeats over the others)";
        } else if (bad > 0 && shape.size() == 3) {
          hint = "make the " + dn + " agree: change the stride or padding of one branch, or pool the larger one";
        }
        error(loc, std::string(what) + " of " + dimsStr(shape) + " and " + dimsStr(b) + ": " + dn + " " + std::to_string(shape[bad]) + " and " +
                       std::to_string(b[bad]) + " differ, and neither is 1",
              hint);
        return Tensor{-1, {}, true};
      }
      shape = out;
    }
  } else if (op == OpKind::Add) {
    for (size_t i = 1; i < parts.size(); ++i)
      if (parts[i].shape != shape) {
        const Dims& a = shape;
        const Dims& b = parts[i].shape;
        std::string hint;
        if (residual && a.size() == 3 && b.size() == 3 && a[1] == 1 && a[2] == 1 && a[0] == b[0]) {
          hint = "to scale the input by a per-channel gate, multiply: mul { identity; seq { ... } }";
        } else if (residual && a.size() == 3 && b.size() == 3) {
          int64_t stride = b[1] > a[1] && a[1] > 0 ? b[1] / a[1] : 1;
          hint = "add a projection shortcut: shortcut { downsample: seq { conv(" + std::to_string(a[0]) + ", 1" +
                 (stride > 1 ? ", stride=" + std::to_string(stride) : "") + ", bias=false); batchnorm } }";
        } else {
          hint = "every branch must produce the same shape";
        }
        error(loc, std::string(residual ? "residual add" : "add") + " of " + dimsStr(a) + " and " + dimsStr(b) + ": shapes differ", hint);
        return Tensor{-1, {}, true};
      }
  } else {
    int64_t c = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      const Dims& d = parts[i].shape;
      if (d.size() != shape.size() || (d.size() == 3 && (d[1] != shape[1] || d[2] != shape[2]))) {
        // A long skip (`from NAME`) is named, with how much larger or smaller it is.
        auto describe = [&](const Tensor& t) {
          auto k = keptNodes_.find(t.node);
          return dimsStr(t.shape) + (k == keptNodes_.end() ? "" : " (kept as '" + k->second.first + "' at " + sm_.where(k->second.second) + ")");
        };
        std::string hint = "check the strides and padding of each branch so they keep the same height and width";
        const Tensor* kept = keptNodes_.count(parts[i].node) ? &parts[i] : keptNodes_.count(parts[0].node) ? &parts[0] : nullptr;
        if (kept && d.size() == 3 && shape.size() == 3) {
          const Tensor& other = kept == &parts[i] ? parts[0] : parts[i];
          int64_t dh = kept->shape[1] - other.shape[1], dw = kept->shape[2] - other.shape[2];
          std::string name = "'" + keptNodes_[kept->node].first + "'";
          auto rc = [](int64_t h, int64_t w) {
            return std::to_string(h) + (h == 1 ? " row" : " rows") + " and " + std::to_string(w) + (w == 1 ? " column" : " columns");
          };
          // The pad layer that evens them out, split as U-Net implementations split it (F.pad with
          // diff // 2 before, the rest after).
          auto padFor = [](int64_t h, int64_t w) {
            return "pad([" + std::to_string(h / 2) + ", " + std::to_string(h - h / 2) + ", " + std::to_string(w / 2) + ", " + std::to_string(w - w / 2) + "])";
          };
          if (dh >= 0 && dw >= 0)
            hint = name + " is " + rc(dh, dw) + " larger: pad the other branch with " + padFor(dh, dw) + " before the concat, or crop " + name +
                   (dh == dw && dh % 2 == 0 ? " by " + std::to_string(dh / 2) + " on each side" : "");
          else if (dh <= 0 && dw <= 0)
            hint = name + " is " + rc(-dh, -dw) + " smaller: pad it, seq { from " + keptNodes_[kept->node].first + "; " + padFor(-dh, -dw) + " }, or crop the other branch";
        }
        error(loc, "concat of " + describe(parts[0]) + " and " + describe(parts[i]) + ": branches must agree in every dimension but channels", hint);
        return Tensor{-1, {}, true};
      }
      c += d[0];
    }
    shape[0] = c;
  }
  std::string base = (m.path.empty() ? "" : m.path + ".") + opName(op);
  int id = addNode(op, base, ins, shape, loc, m.module);
  return Tensor{id, shape, false};
}

// Names a body refers to (callees and identifiers), to tell used blocks from unused ones
// independently of which network was picked.
static void collectRefs(const Expr* e, std::set<std::string>& refs) {
  if (!e) return;
  if (e->kind == Expr::Name) refs.insert(e->text);
  for (const auto& k : e->kids) collectRefs(k.get(), refs);
}

static void collectRefs(const Body& b, std::set<std::string>& refs) {
  for (const auto& s : b) {
    if (s->kind == Stmt::Layer || s->kind == Stmt::Use) refs.insert(s->call.callee);
    for (const auto& a : s->call.args) collectRefs(a.value.get(), refs);
    collectRefs(s->expr.get(), refs);
    collectRefs(s->count.get(), refs);
    collectRefs(s->body, refs);
    collectRefs(s->body2, refs);
  }
}

void Elaborator::warnUnused() {
  std::set<std::string> refs;
  for (const auto& f : prog_.files) {
    for (const auto& l : f->lets) collectRefs(l->expr.get(), refs);
    for (const auto& d : f->decls) {
      std::set<std::string> own;
      collectRefs(d->body, own);
      for (const auto& p : d->params) collectRefs(p.defaultValue.get(), own);
      own.erase(d->name);  // a block naming itself does not make it used
      refs.insert(own.begin(), own.end());
    }
  }
  for (const auto& d : prog_.files[0]->decls) {
    bool isBlock = d->kind == Decl::Block;
    if (isBlock && !refs.count(d->name)) {
      warning(d->loc, "block '" + d->name + "' is never used");
      continue;
    }
    // Parameters are judged only where this compile ran the body: the chosen network and the
    // blocks it instantiated.
    if (!usedDecls_.count(d.get())) continue;
    for (const auto& p : d->params)
      if (!usedParams_.count({d.get(), p.name}))
        warning(p.loc, "parameter '" + p.name + "' of " + (isBlock ? "block" : "network") + " '" + d->name + "' is never used");
  }
}

}  // namespace cnnc
