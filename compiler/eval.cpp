// eval.cpp: evaluation of .cnn expressions. Integers are 64-bit and every operation is checked,
// so overflow in parameter arithmetic is an error at the operator, never a wrapped size.
#include <algorithm>
#include <cmath>

#include "elaborator.h"
#include "shape_rules.h"

namespace cnnc {

const char* kindName(Value::Kind k) {
  switch (k) {
    case Value::None: return "nothing";
    case Value::Int: return "an integer";
    case Value::Float: return "a float";
    case Value::Bool: return "a bool";
    case Value::String: return "a string";
    case Value::List: return "a list";
    case Value::Block: return "a block";
    case Value::Shape: return "a shape";
  }
  return "?";
}

std::string valueStr(const Value& v) {
  switch (v.kind) {
    case Value::Int: return std::to_string(v.i);
    case Value::Float: { char b[64]; snprintf(b, sizeof b, "%g", v.f); return b; }
    case Value::Bool: return v.b ? "true" : "false";
    case Value::String: return "\"" + v.s + "\"";
    case Value::List: {
      std::string s = "[";
      for (size_t i = 0; i < v.list.size(); ++i) s += (i ? ", " : "") + valueStr(v.list[i]);
      return s + "]";
    }
    case Value::Block: return "block " + v.block->name;
    case Value::Shape: return dimsStr(v.shape);
    default: return "nothing";
  }
}

size_t editDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? size_t(0) : size_t(1))});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t bestD = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    size_t d = editDistance(word, c);
    if (d < bestD) { bestD = d; best = c; }
  }
  return best;
}

bool Elaborator::lookup(const std::string& name, Scope& s, Value& out) {
  for (Scope* sc = &s; sc; sc = sc->parent) {
    auto it = sc->vars.find(name);
    if (it != sc->vars.end()) {
      it->second.used = true;
      if (it->second.paramOf) usedParams_.insert({it->second.paramOf, name});
      out = it->second.value;
      return true;
    }
  }
  auto it = globals_.vars.find(name);
  if (it != globals_.vars.end()) {
    out = it->second.value;
    return true;
  }
  auto d = decls_.find(name);
  if (d != decls_.end() && d->second->kind == Decl::Block) {
    usedDecls_.insert(d->second);
    out.kind = Value::Block;
    out.block = d->second;
    return true;
  }
  return false;
}

static Value none() { return Value(); }

Value Elaborator::eval(const Expr& e, Scope& s) {
  switch (e.kind) {
    case Expr::Int: return Value::ofInt(e.intValue);
    case Expr::Float: return Value::ofFloat(e.floatValue);
    case Expr::Bool: return Value::ofBool(e.boolValue);
    case Expr::String: { Value v; v.kind = Value::String; v.s = e.text; return v; }
    case Expr::In: {
      Value v;
      v.kind = Value::Shape;
      for (Scope* sc = &s; sc; sc = sc->parent)
        if (sc->hasIn) { v.shape = sc->in; break; }
      if (v.shape.empty()) return none();  // the input had an error, already reported
      return v;
    }
    case Expr::Name: {
      Value v;
      if (lookup(e.text, s, v)) return v;
      std::vector<std::string> names;
      for (Scope* sc = &s; sc; sc = sc->parent) for (auto& kv : sc->vars) names.push_back(kv.first);
      for (auto& kv : globals_.vars) names.push_back(kv.first);
      for (auto& kv : decls_) names.push_back(kv.first);
      std::string c = closest(e.text, names);
      error(e.loc, "unknown name '" + e.text + "'", c.empty() ? "" : "did you mean '" + c + "'?");
      return none();
    }
    case Expr::List: {
      Value v;
      v.kind = Value::List;
      for (const auto& k : e.kids) {
        Value item = eval(*k, s);
        if (item.kind == Value::None) return none();
        v.list.push_back(std::move(item));
      }
      return v;
    }
    case Expr::Unary: {
      Value a = eval(*e.kids[0], s);
      if (a.kind == Value::None) return a;
      if (e.text == "-") {
        if (a.kind == Value::Int) {
          if (a.i == INT64_MIN) { error(e.loc, "integer overflow in negation"); return none(); }
          return Value::ofInt(-a.i);
        }
        if (a.kind == Value::Float) return Value::ofFloat(-a.f);
        error(e.loc, std::string("cannot negate ") + kindName(a.kind));
        return none();
      }
      if (a.kind != Value::Bool) { error(e.loc, std::string("'!' needs a bool, got ") + kindName(a.kind)); return none(); }
      return Value::ofBool(!a.b);
    }
    case Expr::Binary: {
      const std::string& op = e.text;
      Value a = eval(*e.kids[0], s);
      if (a.kind == Value::None) return a;
      if (op == "&&" || op == "||") {
        if (a.kind != Value::Bool) { error(e.kids[0]->loc, "'" + op + "' needs bools, got " + kindName(a.kind)); return none(); }
        if (op == "&&" && !a.b) return Value::ofBool(false);
        if (op == "||" && a.b) return Value::ofBool(true);
        Value b = eval(*e.kids[1], s);
        if (b.kind == Value::None) return b;
        if (b.kind != Value::Bool) { error(e.kids[1]->loc, "'" + op + "' needs bools, got " + kindName(b.kind)); return none(); }
        return Value::ofBool(b.b);
      }
      Value b = eval(*e.kids[1], s);
      if (b.kind == Value::None) return b;
      if (op == "==" || op == "!=") {
        bool eq;
        if (a.isNumber() && b.isNumber()) eq = (a.kind == Value::Int && b.kind == Value::Int) ? a.i == b.i : a.asDouble() == b.asDouble();
        else if (a.kind != b.kind) { error(e.loc, std::string("cannot compare ") + kindName(a.kind) + " with " + kindName(b.kind)); return none(); }
        else eq = valueStr(a) == valueStr(b);
        return Value::ofBool(op == "==" ? eq : !eq);
      }
      if (!a.isNumber() || !b.isNumber()) {
        error(e.loc, "'" + op + "' needs numbers, got " + kindName(a.kind) + " and " + kindName(b.kind));
        return none();
      }
      if (op == "<" || op == "<=" || op == ">" || op == ">=") {
        bool r;
        if (a.kind == Value::Int && b.kind == Value::Int)
          r = op == "<" ? a.i < b.i : op == "<=" ? a.i <= b.i : op == ">" ? a.i > b.i : a.i >= b.i;
        else {
          double x = a.asDouble(), y = b.asDouble();
          r = op == "<" ? x < y : op == "<=" ? x <= y : op == ">" ? x > y : x >= y;
        }
        return Value::ofBool(r);
      }
      if (a.kind == Value::Int && b.kind == Value::Int) {
        int64_t r = 0;
        bool ok = true;
        if (op == "+") ok = addOk(a.i, b.i, r);
        else if (op == "-") ok = !__builtin_sub_overflow(a.i, b.i, &r);
        else if (op == "*") ok = mulOk(a.i, b.i, r);
        else {
          if (b.i == 0) { error(e.loc, op == "/" ? "division by zero" : "remainder by zero"); return none(); }
          if (a.i == INT64_MIN && b.i == -1) ok = false;
          else r = op == "/" ? a.i / b.i : a.i % b.i;
        }
        if (!ok) { error(e.loc, "integer overflow in " + valueStr(a) + " " + op + " " + valueStr(b)); return none(); }
        return Value::ofInt(r);
      }
      double x = a.asDouble(), y = b.asDouble(), r;
      if (op == "+") r = x + y;
      else if (op == "-") r = x - y;
      else if (op == "*") r = x * y;
      else if (op == "/") {
        if (y == 0) { error(e.loc, "division by zero"); return none(); }
        r = x / y;
      } else { error(e.loc, "'%' needs integers"); return none(); }
      if (!std::isfinite(r)) { error(e.loc, "float overflow"); return none(); }
      return Value::ofFloat(r);
    }
    case Expr::Cond: {
      Value c = eval(*e.kids[0], s);
      if (c.kind == Value::None) return c;
      if (c.kind != Value::Bool) { error(e.kids[0]->loc, std::string("condition must be a bool, got ") + kindName(c.kind)); return none(); }
      return eval(*e.kids[c.b ? 1 : 2], s);
    }
    case Expr::Index: {
      Value l = eval(*e.kids[0], s);
      Value i = eval(*e.kids[1], s);
      if (l.kind == Value::None || i.kind == Value::None) return none();
      if (i.kind != Value::Int) { error(e.loc, std::string("index must be an integer, got ") + kindName(i.kind)); return none(); }
      int64_t n = l.kind == Value::List ? (int64_t)l.list.size() : l.kind == Value::Shape ? (int64_t)l.shape.size() : -1;
      if (n < 0) { error(e.kids[0]->loc, std::string("cannot index ") + kindName(l.kind)); return none(); }
      if (i.i < 0 || i.i >= n) {
        error(e.loc, "index " + std::to_string(i.i) + " is out of range for " + valueStr(l) + " (length " + std::to_string(n) + ")");
        return none();
      }
      return l.kind == Value::List ? l.list[i.i] : Value::ofInt(l.shape[i.i]);
    }
    case Expr::Member: {
      Value v = eval(*e.kids[0], s);
      if (v.kind == Value::None) return v;
      if (v.kind != Value::Shape) { error(e.loc, std::string("'.") + e.text + "' needs a shape such as 'in', got " + kindName(v.kind)); return none(); }
      const Dims& d = v.shape;
      if (e.text == "c") return Value::ofInt(d[0]);
      if (e.text == "h" || e.text == "w") {
        if (d.size() != 3) { error(e.loc, "'in." + e.text + "': the input " + dimsStr(d) + " is flat, it has no height or width"); return none(); }
        return Value::ofInt(e.text == "h" ? d[1] : d[2]);
      }
      if (e.text == "size") return Value::ofInt(numel(d));
      if (e.text == "rank") return Value::ofInt((int64_t)d.size());
      error(e.loc, "a shape has no member '" + e.text + "'", "use c, h, w, size or rank");
      return none();
    }
    case Expr::Call: {
      std::vector<Value> args;
      for (const auto& k : e.kids) {
        args.push_back(eval(*k, s));
        if (args.back().kind == Value::None) return none();
      }
      if (e.text == "len") {
        if (args.size() != 1 || args[0].kind != Value::List) { error(e.loc, "len() takes one list"); return none(); }
        return Value::ofInt((int64_t)args[0].list.size());
      }
      if (e.text == "min" || e.text == "max") {
        if (args.size() < 2) { error(e.loc, e.text + "() takes two or more numbers"); return none(); }
        Value best = args[0];
        for (const auto& a : args) {
          if (!a.isNumber()) { error(e.loc, e.text + "() takes numbers, got " + kindName(a.kind)); return none(); }
          bool less = a.asDouble() < best.asDouble();
          if (e.text == "min" ? less : (!less && a.asDouble() != best.asDouble())) best = a;
        }
        return best;
      }
      error(e.loc, "unknown function '" + e.text + "'", "expressions can call len, min and max; layers and blocks are statements");
      return none();
    }
  }
  return none();
}

}  // namespace cnnc
