// diagnostics.cpp: formatting and de-duplication of compiler messages.
#include "diagnostics.h"

#include "parser.h"

#include <algorithm>
#include <cstdio>

namespace cnnc {

void Diagnostics::report(Diagnostic d) {
  if (d.severity == Severity::Warning) {
    if (suppressWarnings) return;
    if (warningsAsErrors) d.severity = Severity::Error;
  }
  auto key = std::make_tuple(d.loc.file, d.loc.line, d.loc.col, d.message);
  if (!seen_.insert(key).second) return;
  if (d.severity == Severity::Error) ++errors_; else ++warnings_;
  if (print) fputs(render(d).c_str(), stderr);
  list_.push_back(std::move(d));
}

void Diagnostics::error(SourceLoc loc, std::string msg, std::string hint) {
  report({Severity::Error, loc, std::move(msg), {}, std::move(hint)});
}

void Diagnostics::warning(SourceLoc loc, std::string msg, std::string hint) {
  report({Severity::Warning, loc, std::move(msg), {}, std::move(hint)});
}

std::string Diagnostics::render(const Diagnostic& d) const {
  const char* bold = color ? "\033[1m" : "";
  const char* red = color ? "\033[1;31m" : "";
  const char* mag = color ? "\033[1;35m" : "";
  const char* green = color ? "\033[1;32m" : "";
  const char* reset = color ? "\033[0m" : "";
  std::string out;
  bool isErr = d.severity == Severity::Error;
  out += bold;
  out += d.loc.valid() ? sm_.where(d.loc) + ": " : std::string("cnnc: ");
  out += isErr ? std::string(red) + "error: " : std::string(mag) + "warning: ";
  out += reset;
  out += bold + d.message + reset + "\n";
  if (d.loc.valid()) {
    std::string line = sm_.lineText(d.loc.file, d.loc.line);
    // Control characters and bytes of broken UTF-8 would garble the terminal (a NUL would even
    // cut the message short): show them as '?', one per byte, so the caret stays aligned.
    size_t badAt = 0;
    std::string why;
    bool utf8 = checkText(line, badAt, why);
    for (char& ch : line) {
      unsigned char u = (unsigned char)ch;
      if ((u < 0x20 && ch != '\t') || u == 0x7f || (!utf8 && u >= 0x80)) ch = '?';
    }
    int col = d.loc.col;
    // Very long lines (generated or hostile input) show a window around the column.
    const int kWidth = 100;
    if ((int)line.size() > kWidth + 20) {
      int start = std::max(0, col - 1 - kWidth / 2);
      std::string cut = line.substr(start, kWidth);
      line = (start > 0 ? "..." : "") + cut + (start + kWidth < (int)line.size() ? "..." : "");
      col = col - start + (start > 0 ? 3 : 0);
    }
    std::string num = std::to_string(d.loc.line);
    out += " " + num + " | " + line + "\n";
    out += " " + std::string(num.size(), ' ') + " | ";
    // Keep tabs so the caret lines up under tab-indented source.
    for (int i = 1; i < col && i - 1 < (int)line.size(); ++i) out += line[i - 1] == '\t' ? '\t' : ' ';
    out += green;
    out += "^";
    for (int i = 1; i < d.loc.len && i < 80; ++i) out += '~';
    out += reset;
    out += "\n";
  }
  for (const auto& n : d.notes) out += std::string("note: ") + n + "\n";
  if (!d.hint.empty()) out += std::string("hint: ") + d.hint + "\n";
  return out;
}

}  // namespace cnnc
