// value.h: values of the .cnn expression language, computed while elaborating.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ast.h"
#include "graph.h"

namespace cnnc {

struct Value {
  enum Kind { None, Int, Float, Bool, String, List, Block, Shape };
  Kind kind = None;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s;
  std::vector<Value> list;
  const Decl* block = nullptr;
  Dims shape;

  static Value ofInt(int64_t v) { Value x; x.kind = Int; x.i = v; return x; }
  static Value ofFloat(double v) { Value x; x.kind = Float; x.f = v; return x; }
  static Value ofBool(bool v) { Value x; x.kind = Bool; x.b = v; return x; }
  bool isNumber() const { return kind == Int || kind == Float; }
  double asDouble() const { return kind == Int ? (double)i : f; }
};

const char* kindName(Value::Kind k);
std::string valueStr(const Value& v);  // for messages: "64", "[1,2]", "block basic"

}  // namespace cnnc
