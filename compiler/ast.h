// ast.h: the syntax tree of .cnn files. Every node keeps its source location so that later passes
// (elaboration, shape inference) can point diagnostics at the exact token.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "source.h"

namespace cnnc {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum Kind { Int, Float, String, Bool, Name, In, List, Unary, Binary, Cond, Index, Member, Call };
  Kind kind;
  SourceLoc loc;
  int64_t intValue = 0;
  double floatValue = 0;
  bool boolValue = false;
  std::string text;           // Name/Member/Call: the identifier; Unary/Binary: the operator; String
  std::vector<ExprPtr> kids;  // operands, list items, call args
};

struct Arg {
  std::string name;  // empty for a positional argument
  SourceLoc loc;     // of the name if keyword, else of the value
  ExprPtr value;
};

// `name(args)` as a layer or block instantiation.
struct Call {
  std::string callee;
  SourceLoc loc;
  bool hasParens = false;
  std::vector<Arg> args;
};

// One piece of a label template (`"denselayer{i + 1}": ...`): literal text, or an expression
// whose value (an int or a string) is spliced in at elaboration.
struct LabelPart {
  std::string text;  // literal text when expr is null
  ExprPtr expr;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum Kind { Let, If, For, Residual, Concat, Add, Mul, Split, Use, Layer, Seq, Keep, From, Recipe };
  Kind kind;
  SourceLoc loc;          // of the statement's first token
  std::string label;      // Layer/Seq: optional `label:` (a template: as written, quotes included)
  SourceLoc labelLoc;
  std::vector<LabelPart> labelParts;  // non-empty for a template label `"name{expr}":`
  std::string name;       // Let: bound name; For: loop variable; Keep/From: the tensor's name
  ExprPtr expr;           // Let: value; If: condition; For: range
  ExprPtr count;          // Layer/Seq: `* count` repetition, or null
  Call call;              // Layer, Use; Recipe: its fields as keyword arguments (callee "recipe")
  Body body;              // If: then; For/Seq/Concat/Add/Mul/Split: body; Residual: main path
  Body body2;             // If: else; Residual: shortcut
  bool hasElse = false;
  bool hasShortcut = false;
  SourceLoc body2Loc;     // `shortcut` or `else` keyword
};

struct Param {
  std::string name;
  SourceLoc loc;
  ExprPtr defaultValue;  // null if required
};

// A block or a network: both are parametric bodies.
struct Decl {
  enum Kind { Block, Network };
  Kind kind;
  std::string name;
  SourceLoc loc;
  std::vector<Param> params;
  Body body;
  int file = -1;
};

struct Import {
  std::string path;  // as written
  SourceLoc loc;
};

struct FileAst {
  int file = -1;
  std::vector<Import> imports;
  std::vector<std::unique_ptr<Decl>> decls;
  std::vector<StmtPtr> lets;  // top-level `let`s, in order
};

// Renders the tree in a stable indented text form (`cnnc --emit=ast`).
std::string printAst(const FileAst& f, const class SourceManager& sm);

}  // namespace cnnc
