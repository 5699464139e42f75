// ast_printer.cpp: `cnnc --emit=ast`, one node per line, children indented, with line:col.
#include <sstream>

#include "ast.h"

namespace cnnc {
namespace {

struct Printer {
  std::ostringstream o;

  std::string at(const SourceLoc& l) { return " @" + std::to_string(l.line) + ":" + std::to_string(l.col); }

  std::string expr(const Expr& e) {
    switch (e.kind) {
      case Expr::Int: return std::to_string(e.intValue);
      case Expr::Float: { std::ostringstream s; s << e.floatValue; std::string t = s.str(); if (t.find_first_of(".e") == std::string::npos) t += ".0"; return t; }
      case Expr::String: return "\"" + e.text + "\"";
      case Expr::Bool: return e.boolValue ? "true" : "false";
      case Expr::Name: return e.text;
      case Expr::In: return "in";
      case Expr::List: {
        std::string s = "[";
        for (size_t i = 0; i < e.kids.size(); ++i) s += (i ? ", " : "") + expr(*e.kids[i]);
        return s + "]";
      }
      case Expr::Unary: return "(" + e.text + expr(*e.kids[0]) + ")";
      case Expr::Binary: return "(" + expr(*e.kids[0]) + " " + e.text + " " + expr(*e.kids[1]) + ")";
      case Expr::Cond: return "(" + expr(*e.kids[0]) + " ? " + expr(*e.kids[1]) + " : " + expr(*e.kids[2]) + ")";
      case Expr::Index: return expr(*e.kids[0]) + "[" + expr(*e.kids[1]) + "]";
      case Expr::Member: return expr(*e.kids[0]) + "." + e.text;
      case Expr::Call: {
        std::string s = e.text + "(";
        for (size_t i = 0; i < e.kids.size(); ++i) s += (i ? ", " : "") + expr(*e.kids[i]);
        return s + ")";
      }
    }
    return "?";
  }

  std::string call(const Call& c) {
    std::string s = c.callee;
    if (c.hasParens) {
      s += "(";
      for (size_t i = 0; i < c.args.size(); ++i)
        s += (i ? ", " : "") + (c.args[i].name.empty() ? "" : c.args[i].name + "=") + expr(*c.args[i].value);
      s += ")";
    }
    return s;
  }

  void body(const Body& b, int ind) {
    for (const auto& s : b) stmt(*s, ind);
  }

  void stmt(const Stmt& s, int ind) {
    std::string pad(ind * 2, ' ');
    std::string label = s.label.empty() ? "" : " label=" + s.label;
    std::string count = s.count ? " repeat=" + expr(*s.count) : "";
    switch (s.kind) {
      case Stmt::Let: o << pad << "let " << s.name << " = " << expr(*s.expr) << at(s.loc) << "\n"; break;
      case Stmt::If:
        o << pad << "if " << expr(*s.expr) << at(s.loc) << "\n";
        body(s.body, ind + 1);
        if (s.hasElse) { o << pad << "else" << at(s.body2Loc) << "\n"; body(s.body2, ind + 1); }
        break;
      case Stmt::For:
        o << pad << "for " << s.name << " in " << expr(*s.expr) << at(s.loc) << "\n";
        body(s.body, ind + 1);
        break;
      case Stmt::Residual:
        o << pad << "residual" << at(s.loc) << "\n";
        body(s.body, ind + 1);
        if (s.hasShortcut) { o << pad << "shortcut" << at(s.body2Loc) << "\n"; body(s.body2, ind + 1); }
        break;
      case Stmt::Concat: o << pad << "concat" << at(s.loc) << "\n"; body(s.body, ind + 1); break;
      case Stmt::Add: o << pad << "add" << at(s.loc) << "\n"; body(s.body, ind + 1); break;
      case Stmt::Mul: o << pad << "mul" << at(s.loc) << "\n"; body(s.body, ind + 1); break;
      case Stmt::Split: o << pad << "split" << at(s.loc) << "\n"; body(s.body, ind + 1); break;
      case Stmt::Keep: o << pad << "keep " << s.name << at(s.loc) << "\n"; break;
      case Stmt::From: o << pad << "from " << s.name << at(s.loc) << "\n"; break;
      case Stmt::Use: o << pad << "use " << call(s.call) << at(s.loc) << "\n"; break;
      case Stmt::Recipe:
        o << pad << "recipe" << at(s.loc) << "\n";
        for (const Arg& a : s.call.args) o << pad << "  " << a.name << " = " << expr(*a.value) << at(a.loc) << "\n";
        break;
      case Stmt::Layer: o << pad << "layer " << call(s.call) << label << count << at(s.loc) << "\n"; break;
      case Stmt::Seq: o << pad << "seq" << label << count << at(s.loc) << "\n"; body(s.body, ind + 1); break;
    }
  }
};

}  // namespace

std::string printAst(const FileAst& f, const SourceManager& sm) {
  Printer p;
  p.o << "file \"" << sm.file(f.file).path << "\"\n";
  for (const auto& i : f.imports) p.o << "  import \"" << i.path << "\"" << p.at(i.loc) << "\n";
  for (const auto& l : f.lets) p.stmt(*l, 1);
  for (const auto& d : f.decls) {
    p.o << "  " << (d->kind == Decl::Block ? "block " : "network ") << d->name << p.at(d->loc) << "\n";
    for (const auto& prm : d->params)
      p.o << "    param " << prm.name << (prm.defaultValue ? " = " + p.expr(*prm.defaultValue) : "") << p.at(prm.loc) << "\n";
    p.body(d->body, 2);
  }
  return p.o.str();
}

}  // namespace cnnc
