// source.h: source files held in memory and locations into them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace cnnc {

// A position in a loaded file. line and col are 1-based; len is the caret width.
struct SourceLoc {
  int file = -1;
  int line = 0;
  int col = 0;
  int len = 1;
  bool valid() const { return file >= 0 && line > 0; }
};

struct SourceFile {
  std::string path;     // as the user (or the import) spelled it
  std::string text;
  std::vector<size_t> lineStarts;  // byte offset of each line's first char
};

// Owns every loaded file, so locations stay valid for the whole compile.
class SourceManager {
public:
  int add(std::string path, std::string text);
  const SourceFile& file(int id) const { return files_[id]; }
  int count() const { return (int)files_.size(); }
  // The text of one line, without its newline; empty if out of range.
  std::string lineText(int file, int line) const;
  std::string where(const SourceLoc& loc) const;  // "path:line:col"

private:
  std::vector<SourceFile> files_;
};

}  // namespace cnnc
