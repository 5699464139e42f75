// diagnostics.h: compiler messages in the style of clang and chibicc.
//
//   nets/x.cnn:7:5: error: message
//       7 |   conv(0, 3)
//         |        ^
//   note: in block 'basic' instantiated at nets/x.cnn:31:5
//   hint: what to do about it
#pragma once
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "source.h"

namespace cnnc {

enum class Severity { Error, Warning };

struct Diagnostic {
  Severity severity = Severity::Error;
  SourceLoc loc;
  std::string message;
  std::vector<std::string> notes;  // printed after the source excerpt, in order
  std::string hint;                 // optional "what to do"
};

class Diagnostics {
public:
  explicit Diagnostics(const SourceManager& sm) : sm_(sm) {}

  // Reports a diagnostic unless an identical one (same place, same text) was already reported:
  // a block instantiated many times reports each distinct fault once.
  void report(Diagnostic d);
  void error(SourceLoc loc, std::string msg, std::string hint = "");
  void warning(SourceLoc loc, std::string msg, std::string hint = "");

  int errors() const { return errors_; }
  int warnings() const { return warnings_; }
  const std::vector<Diagnostic>& all() const { return list_; }

  bool warningsAsErrors = false;
  bool suppressWarnings = false;
  bool color = false;
  bool print = true;  // false: collect only (the fuzzer and unit tests read all())
  std::string render(const Diagnostic& d) const;

private:
  const SourceManager& sm_;
  std::vector<Diagnostic> list_;
  std::set<std::tuple<int, int, int, std::string>> seen_;
  int errors_ = 0, warnings_ = 0;
};

}  // namespace cnnc
