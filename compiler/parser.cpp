// parser.cpp: the front of the front end.
//
// 1. The raw bytes are checked (size, NUL bytes, UTF-8) before ANTLR sees them, so binary
//    garbage gets one precise error instead of hundreds of token errors.
// 2. The ANTLR lexer tokenises; a pre-scan of the tokens bounds the nesting depth, since the
//    generated recursive-descent parser would otherwise recurse once per open bracket.
// 3. The ANTLR parser builds a parse tree; syntax errors go through our listener so that they
//    print as `file:line:col: error:` with a caret.
// 4. The parse tree is converted into the AST (ast.h), keeping a location on every node.
// 5. loadProgram follows `import`s relative to the importing file, then along the search path
//    (importSearchPath: CNNC_PATH, then the installed network library), detecting cycles.
#include "parser.h"

#include "common/install_paths.h"

#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "CnnLexer.h"
#include "common/utf8.h"
#include "CnnParser.h"
#include "antlr4-runtime.h"

namespace cnnc {
namespace fs = std::filesystem;

bool checkText(const std::string& text, size_t& badOffset, std::string& why) {
  Utf8Fault fault;
  size_t bad = firstBadUtf8((const unsigned char*)text.data(), text.size(), &fault);
  size_t nul = text.find('\0');  // valid UTF-8, but no source text
  if (nul < bad) { badOffset = nul; why = "NUL byte: this looks like a binary file, not a .cnn source"; return false; }
  if (bad == text.size()) return true;
  badOffset = bad;
  why = fault == Utf8Fault::BadByte ? "invalid UTF-8 byte" : "invalid UTF-8 sequence";
  return false;
}

namespace {

// Converts a byte offset into a 1-based line/column (columns count bytes, as clang does).
SourceLoc locAtOffset(const SourceFile& f, int file, size_t off) {
  SourceLoc l;
  l.file = file;
  size_t line = 0;
  for (size_t i = 0; i < f.lineStarts.size() && f.lineStarts[i] <= off; ++i) line = i;
  l.line = (int)line + 1;
  l.col = (int)(off - f.lineStarts[line]) + 1;
  return l;
}

std::string tokenDisplay(const std::string& t) {
  if (t == "<EOF>") return "end of file";
  std::string s = t.size() > 30 ? t.substr(0, 30) + "..." : t;
  return "'" + s + "'";
}

// Reports ANTLR's syntax errors as compiler diagnostics.
class ErrorListener : public antlr4::BaseErrorListener {
public:
  ErrorListener(int file, Diagnostics& d, antlr4::dfa::Vocabulary vocab) : file_(file), diags_(d), vocab_(vocab) {}
  // For text parsed out of a string (a label template's `{expr}`): every position is on `line`,
  // `colShift` columns to the right.
  void placeAt(int line, int colShift) { line_ = line, colShift_ = colShift; }

  void syntaxError(antlr4::Recognizer*, antlr4::Token* tok, size_t line, size_t col,
                   const std::string& msg, std::exception_ptr e) override {
    SourceLoc loc{file_, line_ ? line_ : (int)line, (int)col + 1 + colShift_, 1};
    std::string text;
    if (tok) {
      text = tok->getText();
      if (tok->getType() != antlr4::Token::EOF) loc.len = std::max<int>(1, std::min<int>(40, (int)text.size()));
    }
    std::string m;
    std::string hint;
    if (!tok) {
      m = "unrecognised text: " + msg.substr(msg.find(':') == std::string::npos ? 0 : msg.find(':') + 2);
    } else if (tok->getType() == CnnLexer::UNTERMINATED_COMMENT) {
      m = "unterminated comment: '/*' has no matching '*/'";
      loc.len = 2;
    } else if (tok->getType() == CnnLexer::UNTERMINATED_STRING) {
      m = "unterminated string: the closing '\"' is missing";
      loc.len = 1;
    } else if (tok->getType() == CnnLexer::ERRCHAR) {
      m = "stray character " + tokenDisplay(text) + " in program";
    } else {
      m = "unexpected " + tokenDisplay(text);
      // ANTLR says "expecting {a, b, c}"; keep that list only while it is short enough to help.
      auto p = msg.find("expecting ");
      if (p != std::string::npos) {
        std::string exp = msg.substr(p + 10);
        size_t commas = std::count(exp.begin(), exp.end(), ',');
        if (commas < 6) m += ", expected " + exp;
      } else if (msg.find("missing ") == 0) {
        m = msg;
      } else if (msg.find("extraneous input") == 0) {
        m = "unexpected " + tokenDisplay(text);
      } else if (msg.find("no viable alternative") == 0) {
        m = "syntax error at " + tokenDisplay(text);
      }
      if (text == "<EOF>") {
        if (line_) m = "the expression in a label's {} ends early", hint = "complete it, e.g. {i + 1}";
        else hint = "the file ends early: is a '}' or ')' missing?";
      }
    }
    (void)e;
    if (count_++ < 20) diags_.error(loc, readable(m), hint);
  }

private:
  // ANTLR speaks in token names (ID, INT, ...); users should read words. Quoted text is the
  // user's own and stays as it is.
  static std::string readable(std::string m) {
    static const std::pair<std::string, std::string> names[] = {
        {"ID", "a name"}, {"INT", "an integer"}, {"FLOAT", "a number"}, {"STRING", "a string"}};
    for (const auto& [from, to] : names)
      for (size_t p = 0; (p = m.find(from, p)) != std::string::npos;) {
        auto wordChar = [&](size_t i) { return isalnum((unsigned char)m[i]) || m[i] == '_' || m[i] == '\''; };
        bool whole = (p == 0 || !wordChar(p - 1)) && (p + from.size() >= m.size() || !wordChar(p + from.size()));
        if (whole) m.replace(p, from.size(), to), p += to.size();
        else p += from.size();
      }
    if (m.compare(0, 8, "missing ") == 0) {  // "missing X at 'y'" -> "expected X before 'y'"
      auto at = m.find(" at ");
      if (at != std::string::npos) m = "expected " + m.substr(8, at - 8) + " before " + m.substr(at + 4);
    }
    return m;
  }

  int file_;
  Diagnostics& diags_;
  antlr4::dfa::Vocabulary vocab_;
  int count_ = 0;
  int line_ = 0, colShift_ = 0;
};

// Builds AST nodes from ANTLR contexts.
class Builder {
public:
  Builder(int file, Diagnostics& d) : file_(file), diags_(d) {}

  SourceLoc loc(antlr4::Token* t) const {
    SourceLoc l{file_, line_ ? line_ : (int)t->getLine(), (int)t->getCharPositionInLine() + 1 + colShift_, 1};
    l.len = std::max<int>(1, (int)t->getText().size());
    return l;
  }
  SourceLoc loc(antlr4::ParserRuleContext* c) const {
    SourceLoc l = loc(c->getStart());
    // Underline the whole construct when it sits on one line.
    auto* stop = c->getStop();
    if (stop && stop->getLine() == c->getStart()->getLine() && stop->getStopIndex() >= c->getStart()->getStartIndex())
      l.len = (int)(stop->getStopIndex() - c->getStart()->getStartIndex() + 1);
    return l;
  }

  std::unique_ptr<FileAst> file(CnnParser::FileContext* ctx) {
    auto f = std::make_unique<FileAst>();
    f->file = file_;
    for (auto* im : ctx->importDecl()) {
      Import i;
      i.path = unquote(im->STRING()->getSymbol());
      i.loc = loc(im->STRING()->getSymbol());
      f->imports.push_back(std::move(i));
    }
    for (auto* td : ctx->topDecl()) {
      if (td->blockDecl()) f->decls.push_back(decl(td->blockDecl()->ID()->getSymbol(), td->blockDecl()->paramList(), td->blockDecl()->body(), Decl::Block));
      else if (td->networkDecl()) f->decls.push_back(decl(td->networkDecl()->ID()->getSymbol(), td->networkDecl()->paramList(), td->networkDecl()->body(), Decl::Network));
      else if (td->letStmt()) f->lets.push_back(let(td->letStmt()));
    }
    return f;
  }

private:
  std::unique_ptr<Decl> decl(antlr4::Token* name, CnnParser::ParamListContext* pl, CnnParser::BodyContext* b, Decl::Kind k) {
    auto d = std::make_unique<Decl>();
    d->kind = k;
    d->name = name->getText();
    d->loc = loc(name);
    d->file = file_;
    if (pl)
      for (auto* p : pl->param()) {
        Param prm;
        prm.name = p->ID()->getText();
        prm.loc = loc(p->ID()->getSymbol());
        if (p->expr()) prm.defaultValue = expr(p->expr());
        d->params.push_back(std::move(prm));
      }
    d->body = body(b);
    return d;
  }

  Body body(CnnParser::BodyContext* b) {
    Body out;
    if (!b) return out;
    for (auto* s : b->stmt())
      if (auto st = stmt(s)) out.push_back(std::move(st));
    return out;
  }

  StmtPtr let(CnnParser::LetStmtContext* c) {
    auto s = std::make_unique<Stmt>();
    s->kind = Stmt::Let;
    s->loc = loc(c->ID()->getSymbol());
    s->name = c->ID()->getText();
    s->expr = expr(c->expr());
    return s;
  }

  StmtPtr stmt(CnnParser::StmtContext* c) {
    if (auto* x = dynamic_cast<CnnParser::StmtLetContext*>(c)) return let(x->letStmt());
    auto s = std::make_unique<Stmt>();
    s->loc = loc(c->getStart());
    if (auto* x = dynamic_cast<CnnParser::StmtIfContext*>(c)) {
      s->kind = Stmt::If;
      s->expr = expr(x->expr());
      s->body = body(x->body());
      if (auto* e = x->elseClause()) {
        s->hasElse = true;
        s->body2Loc = loc(e->getStart());
        if (e->body()) {
          s->body2 = body(e->body());
        } else if (e->ifChain) {
          if (!dynamic_cast<CnnParser::StmtIfContext*>(e->ifChain)) {
            diags_.error(loc(e->ifChain->getStart()), "expected '{' or 'if' after 'else'");
          } else if (auto inner = stmt(e->ifChain)) {
            s->body2.push_back(std::move(inner));
          }
        }
      }
    } else if (auto* x = dynamic_cast<CnnParser::StmtForContext*>(c)) {
      s->kind = Stmt::For;
      s->name = x->ID()->getText();
      s->expr = expr(x->expr());
      s->body = body(x->body());
    } else if (auto* x = dynamic_cast<CnnParser::StmtResidualContext*>(c)) {
      s->kind = Stmt::Residual;
      s->body = body(x->body(0));
      if (x->body().size() > 1) {
        s->hasShortcut = true;
        s->body2 = body(x->body(1));
        s->body2Loc = loc(x->body(1)->getStart());
      }
    } else if (auto* x = dynamic_cast<CnnParser::StmtConcatContext*>(c)) {
      s->kind = Stmt::Concat;
      s->body = body(x->body());
    } else if (auto* x = dynamic_cast<CnnParser::StmtAddContext*>(c)) {
      s->kind = Stmt::Add;
      s->body = body(x->body());
    } else if (auto* x = dynamic_cast<CnnParser::StmtMulContext*>(c)) {
      s->kind = Stmt::Mul;
      s->body = body(x->body());
    } else if (auto* x = dynamic_cast<CnnParser::StmtSplitContext*>(c)) {
      s->kind = Stmt::Split;
      s->body = body(x->body());
    } else if (auto* x = dynamic_cast<CnnParser::StmtKeepContext*>(c)) {
      s->kind = Stmt::Keep;
      s->name = x->ID()->getText();
    } else if (auto* x = dynamic_cast<CnnParser::StmtFromContext*>(c)) {
      s->kind = Stmt::From;
      s->name = x->ID()->getText();
    } else if (auto* x = dynamic_cast<CnnParser::StmtRecipeContext*>(c)) {
      s->kind = Stmt::Recipe;
      s->call.callee = "recipe";
      s->call.loc = s->loc;
      for (auto* f : x->recipeField()) {
        Arg arg;
        arg.name = f->ID()->getText();
        arg.loc = loc(f->ID()->getSymbol());
        arg.value = expr(f->expr());
        s->call.args.push_back(std::move(arg));
      }
    } else if (auto* x = dynamic_cast<CnnParser::StmtUseContext*>(c)) {
      s->kind = Stmt::Use;
      s->call = call(x->call());
    } else if (auto* x = dynamic_cast<CnnParser::StmtUnitContext*>(c)) {
      if (x->label) {
        s->label = x->label->getText();
        s->labelLoc = loc(x->label->getStart());
        if (x->label->STRING() && !labelTemplate(x->label->STRING()->getSymbol(), *s)) return nullptr;
      }
      if (x->count) s->count = expr(x->count);
      if (auto* sq = dynamic_cast<CnnParser::UnitSeqContext*>(x->unit())) {
        s->kind = Stmt::Seq;
        s->body = body(sq->body());
        if (!x->label) s->loc = loc(sq->getStart());
      } else if (auto* cl = dynamic_cast<CnnParser::UnitCallContext*>(x->unit())) {
        s->kind = Stmt::Layer;
        s->call = call(cl->call());
        s->loc = s->call.loc;
      } else {
        return nullptr;  // a syntax error was reported already
      }
    } else {
      return nullptr;
    }
    return s;
  }

  Call call(CnnParser::CallContext* c) {
    Call out;
    out.callee = c->ID()->getText();
    out.loc = loc(c->ID()->getSymbol());
    out.hasParens = c->children.size() > 1;
    if (auto* al = c->argList())
      for (auto* a : al->arg()) {
        Arg arg;
        if (a->ID()) {
          arg.name = a->ID()->getText();
          arg.loc = loc(a->ID()->getSymbol());
        }
        arg.value = expr(a->expr());
        if (!a->ID() && arg.value) arg.loc = arg.value->loc;
        out.args.push_back(std::move(arg));
      }
    return out;
  }

  ExprPtr make(Expr::Kind k, SourceLoc l) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->loc = l;
    return e;
  }

  ExprPtr expr(CnnParser::ExprContext* c) {
    if (!c) return make(Expr::Int, {});
    if (auto* x = dynamic_cast<CnnParser::ExprParenContext*>(c)) return expr(x->expr());
    if (auto* x = dynamic_cast<CnnParser::ExprIntContext*>(c)) {
      auto e = make(Expr::Int, loc(x->INT()->getSymbol()));
      const std::string t = x->INT()->getText();
      errno = 0;
      char* end = nullptr;
      long long v = strtoll(t.c_str(), &end, 10);
      if (errno == ERANGE || v < 0) diags_.error(e->loc, "integer literal " + t + " is too large (the limit is 2^63-1)");
      e->intValue = v;
      return e;
    }
    if (auto* x = dynamic_cast<CnnParser::ExprFloatContext*>(c)) {
      auto e = make(Expr::Float, loc(x->FLOAT()->getSymbol()));
      e->floatValue = strtod(x->FLOAT()->getText().c_str(), nullptr);
      if (!std::isfinite(e->floatValue)) diags_.error(e->loc, "float literal " + x->FLOAT()->getText() + " is out of range");
      return e;
    }
    if (auto* x = dynamic_cast<CnnParser::ExprStringContext*>(c)) {
      auto e = make(Expr::String, loc(x->STRING()->getSymbol()));
      e->text = unquote(x->STRING()->getSymbol());
      return e;
    }
    if (auto* x = dynamic_cast<CnnParser::ExprBoolContext*>(c)) {
      auto e = make(Expr::Bool, loc(x));
      e->boolValue = x->getText() == "true";
      return e;
    }
    if (auto* x = dynamic_cast<CnnParser::ExprInContext*>(c)) return make(Expr::In, loc(x));
    if (auto* x = dynamic_cast<CnnParser::ExprNameContext*>(c)) {
      auto e = make(Expr::Name, loc(x->ID()->getSymbol()));
      e->text = x->ID()->getText();
      return e;
    }
    if (auto* x = dynamic_cast<CnnParser::ExprListContext*>(c)) {
      auto e = make(Expr::List, loc(x->getStart()));
      for (auto* k : x->expr()) e->kids.push_back(expr(k));
      return e;
    }
    if (auto* x = dynamic_cast<CnnParser::ExprCallContext*>(c)) {
      auto e = make(Expr::Call, loc(x->ID()->getSymbol()));
      e->text = x->ID()->getText();
      for (auto* k : x->expr()) e->kids.push_back(expr(k));
      return e;
    }
    if (auto* x = dynamic_cast<CnnParser::ExprUnaryContext*>(c)) {
      auto e = make(Expr::Unary, loc(x->op));
      e->text = x->op->getText();
      e->kids.push_back(expr(x->expr()));
      return e;
    }
    if (auto* x = dynamic_cast<CnnParser::ExprBinaryContext*>(c)) {
      auto e = make(Expr::Binary, loc(x->op));
      e->text = x->op->getText();
      e->kids.push_back(expr(x->expr(0)));
      e->kids.push_back(expr(x->expr(1)));
      return e;
    }
    if (auto* x = dynamic_cast<CnnParser::ExprCondContext*>(c)) {
      auto e = make(Expr::Cond, loc(x));
      for (auto* k : x->expr()) e->kids.push_back(expr(k));
      return e;
    }
    if (auto* x = dynamic_cast<CnnParser::ExprIndexContext*>(c)) {
      auto e = make(Expr::Index, loc(x->expr(1)));
      e->kids.push_back(expr(x->expr(0)));
      e->kids.push_back(expr(x->expr(1)));
      return e;
    }
    if (auto* x = dynamic_cast<CnnParser::ExprMemberContext*>(c)) {
      auto e = make(Expr::Member, loc(x->ID()->getSymbol()));
      e->text = x->ID()->getText();
      e->kids.push_back(expr(x->expr()));
      return e;
    }
    return make(Expr::Int, loc(c));
  }

  // `"block{s + 1}-{j}"` -> parts "block", s + 1, "-", j. Each `{...}` is parsed as an expression
  // with its own lexer and parser (the grammar keeps a string one token), placed at its columns.
  bool labelTemplate(antlr4::Token* t, Stmt& st) {
    const std::string raw = t->getText();
    const int col0 = (int)t->getCharPositionInLine();  // of the opening quote, 0-based
    auto at = [&](size_t i, int len) { return SourceLoc{file_, (int)t->getLine(), col0 + (int)i + 1, len}; };
    if (raw.size() <= 2) {
      diags_.error(loc(t), "empty label", "write a name such as \"layer{i}\", or leave the label out");
      return false;
    }
    std::string lit;
    for (size_t i = 1; i + 1 < raw.size(); ++i) {
      char ch = raw[i];
      if (ch == '{') {
        size_t close = raw.find('}', i + 1);
        if (close == std::string::npos) {
          diags_.error(at(i, 1), "'{' in a label has no matching '}'", "a label template reads \"denselayer{i + 1}\"");
          return false;
        }
        std::string text = raw.substr(i + 1, close - i - 1);
        if (text.find_first_not_of(" \t") == std::string::npos) {
          diags_.error(at(i, (int)(close - i + 1)), "empty '{}' in a label", "put an expression inside, e.g. {i + 1}");
          return false;
        }
        if (!lit.empty()) st.labelParts.push_back({lit, nullptr}), lit.clear();
        ExprPtr e = subExpr(text, (int)t->getLine(), col0 + (int)i + 1);
        if (!e) return false;
        st.labelParts.push_back({"", std::move(e)});
        i = close;
      } else if (ch == '}') {
        diags_.error(at(i, 1), "'}' in a label without an opening '{'");
        return false;
      } else if (isalnum((unsigned char)ch) || ch == '_' || ch == '-') {
        lit += ch;
      } else {
        diags_.error(at(i, 1), std::string("a label may hold letters, digits, '_' and '-', not '") + ch + "'",
                     ch == '.' ? "PyTorch joins module names with '.', so a name cannot contain one" : "");
        return false;
      }
    }
    if (!lit.empty()) st.labelParts.push_back({lit, nullptr});
    return true;
  }

  ExprPtr subExpr(const std::string& text, int line, int colShift) {
    int before = diags_.errors();
    antlr4::ANTLRInputStream input(text);
    CnnLexer lexer(&input);
    ErrorListener lexListener(file_, diags_, lexer.getVocabulary());
    lexListener.placeAt(line, colShift);
    lexer.removeErrorListeners();
    lexer.addErrorListener(&lexListener);
    antlr4::CommonTokenStream tokens(&lexer);
    tokens.fill();
    CnnParser parser(&tokens);
    ErrorListener parseListener(file_, diags_, parser.getVocabulary());
    parseListener.placeAt(line, colShift);
    parser.removeErrorListeners();
    parser.addErrorListener(&parseListener);
    CnnParser::ExprContext* tree = parser.expr();
    if (diags_.errors() > before) return nullptr;
    antlr4::Token* next = tokens.LT(1);
    if (next && next->getType() != antlr4::Token::EOF) {
      diags_.error({file_, line, colShift + (int)next->getCharPositionInLine() + 1, (int)next->getText().size()},
                   "unexpected '" + next->getText() + "' in a label expression", "one expression per {}");
      return nullptr;
    }
    Builder sub(file_, diags_);
    sub.line_ = line;
    sub.colShift_ = colShift;
    return sub.expr(tree);
  }

  std::string unquote(antlr4::Token* t) {
    std::string s = t->getText();
    if (s.size() < 2) return s;
    std::string out;
    for (size_t i = 1; i + 1 < s.size(); ++i) {
      if (s[i] == '\\' && i + 2 < s.size()) {
        char n = s[++i];
        out += n == 'n' ? '\n' : n == 't' ? '\t' : n;
      } else {
        out += s[i];
      }
    }
    return out;
  }

  int file_;
  Diagnostics& diags_;
  int line_ = 0, colShift_ = 0;  // see ErrorListener::placeAt
};

}  // namespace

std::unique_ptr<FileAst> parseSource(int file, SourceManager& sm, Diagnostics& diags, const ParseLimits& limits) {
  const SourceFile& src = sm.file(file);
  if (src.text.size() > limits.maxFileBytes) {
    diags.error({file, 1, 1, 1}, "file is " + std::to_string(src.text.size()) + " bytes; the limit for a .cnn source is " +
                                     std::to_string(limits.maxFileBytes));
    return nullptr;
  }
  size_t bad = 0;
  std::string why;
  if (!checkText(src.text, bad, why)) {
    diags.error(locAtOffset(src, file, bad), why, "save the file as UTF-8 text");
    return nullptr;
  }
  int errorsBefore = diags.errors();
  antlr4::ANTLRInputStream input(src.text);
  CnnLexer lexer(&input);
  ErrorListener lexListener(file, diags, lexer.getVocabulary());
  lexer.removeErrorListeners();
  lexer.addErrorListener(&lexListener);
  antlr4::CommonTokenStream tokens(&lexer);
  tokens.fill();
  if (tokens.size() > limits.maxTokens) {
    diags.error({file, 1, 1, 1}, "file has " + std::to_string(tokens.size()) + " tokens; the limit is " + std::to_string(limits.maxTokens));
    return nullptr;
  }
  // Bound nesting before the recursive parser sees it.
  int depth = 0;
  for (auto* t : tokens.getTokens()) {
    std::string s = t->getText();
    if (t->getType() == CnnLexer::EOF) break;
    if (s == "(" || s == "[" || s == "{") {
      if (++depth > limits.maxNesting) {
        diags.error({file, (int)t->getLine(), (int)t->getCharPositionInLine() + 1, 1},
                    "nesting is deeper than " + std::to_string(limits.maxNesting) + " levels",
                    "split the expression or the body into named blocks or lets");
        return nullptr;
      }
    } else if (s == ")" || s == "]" || s == "}") {
      depth = std::max(0, depth - 1);
    }
  }
  CnnParser parser(&tokens);
  ErrorListener parseListener(file, diags, parser.getVocabulary());
  parser.removeErrorListeners();
  parser.addErrorListener(&parseListener);
  CnnParser::FileContext* tree = parser.file();
  if (diags.errors() > errorsBefore) return nullptr;
  Builder b(file, diags);
  auto ast = b.file(tree);
  if (diags.errors() > errorsBefore) return nullptr;
  return ast;
}

namespace {

bool readFile(const std::string& path, std::string& out, std::string& err) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) { err = "is a directory"; return false; }
  std::ifstream in(path, std::ios::binary);
  if (!in) { err = std::strerror(errno); return false; }
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

// The first folder of the search path that holds `rel` (a relative path), joined to it; else `fallback`.
fs::path onSearchPath(const fs::path& rel, const fs::path& fallback) {
  std::error_code ec;
  if (rel.is_relative())
    for (const std::string& dir : importSearchPath())
      if (fs::exists(fs::path(dir) / rel, ec)) return fs::path(dir) / rel;
  return fallback;
}

// The search path for messages: "a, b" ("" when empty).
std::string searchPathText() {
  std::string s;
  for (const std::string& dir : importSearchPath()) s += (s.empty() ? "" : ", ") + dir;
  return s;
}

struct Loader {
  SourceManager& sm;
  Diagnostics& diags;
  const ParseLimits& limits;
  Program& prog;
  std::map<std::string, int> done;          // canonical path -> index in prog.files
  std::vector<std::string> active;          // canonical paths being loaded (import chain)
  std::vector<std::string> activeShown;     // the same, as spelled
  bool ok = true;

  void load(const std::string& shown, const std::string& canon, SourceLoc from) {
    // A file still on the import chain is "done" already (its slot is reserved), so look for a
    // cycle first.
    for (size_t i = 0; i < active.size(); ++i)
      if (active[i] == canon) {
        std::string chain;
        for (size_t k = i; k < activeShown.size(); ++k) chain += activeShown[k] + " -> ";
        chain += shown;
        diags.error(from, "import cycle: " + chain, "move the shared blocks into a file that imports neither");
        ok = false;
        return;
      }
    if (done.count(canon)) return;
    if (active.size() > 64) {
      diags.error(from, "imports nested more than 64 deep");
      ok = false;
      return;
    }
    std::string text, err;
    if (!readFile(shown, text, err)) {
      std::string where = searchPathText();
      if (from.valid())
        diags.error(from, "cannot open imported file '" + shown + "': " + err,
                    "import paths are relative to the importing file, then to each folder of the search path (" +
                        (where.empty() ? std::string("empty: set CNNC_PATH to folders of .cnn files") : where) + ")");
      else
        diags.error({}, "cannot open '" + shown + "': " + err + (where.empty() || fs::path(shown).is_absolute() ? "" : " (nor in " + where + ")"));
      ok = false;
      return;
    }
    int id = sm.add(shown, std::move(text));
    auto ast = parseSource(id, sm, diags, limits);
    if (!ast) { ok = false; return; }
    active.push_back(canon);
    activeShown.push_back(shown);
    size_t slot = prog.files.size();
    done[canon] = (int)slot;
    prog.files.push_back(nullptr);
    for (const auto& im : ast->imports) {
      fs::path base = fs::path(shown).parent_path();
      fs::path p = base / im.path;
      std::error_code ec;
      if (!fs::exists(p, ec)) p = onSearchPath(im.path, p);
      fs::path c = fs::weakly_canonical(p, ec);
      load(p.lexically_normal().string(), ec ? p.string() : c.string(), im.loc);
    }
    active.pop_back();
    activeShown.pop_back();
    prog.files[slot] = std::move(ast);
  }
};

}  // namespace

std::vector<std::string> importSearchPath() {
  std::vector<std::string> dirs;
  if (const char* env = getenv("CNNC_PATH")) {
    std::string s = env;
    for (size_t a = 0; a <= s.size();) {
      size_t b = s.find(':', a);
      if (b == std::string::npos) b = s.size();
      if (b > a) dirs.push_back(s.substr(a, b - a));
      a = b + 1;
    }
  }
  std::string lib = installedPath("share/cnnc/nets");
  if (!lib.empty()) dirs.push_back(lib);
  return dirs;
}

bool loadProgram(const std::string& path, SourceManager& sm, Diagnostics& diags, Program& out, const ParseLimits& limits) {
  Loader l{sm, diags, limits, out, {}, {}, {}};
  std::error_code ec;
  // A network named by a relative path that is not here may come from the search path too
  // (`cnnc resnet18.cnn -o resnet18` with the installed library).
  std::string first = fs::exists(path, ec) ? path : onSearchPath(path, path).string();
  fs::path c = fs::weakly_canonical(first, ec);
  l.load(first, ec ? first : c.string(), {});
  if (!l.ok) return false;
  // Drop slots of files that failed (they were reported).
  for (auto& f : out.files) if (!f) return false;
  return true;
}

}  // namespace cnnc
