// source.cpp: line tables and location formatting for loaded sources.
#include "source.h"

namespace cnnc {

int SourceManager::add(std::string path, std::string text) {
  SourceFile f;
  f.path = std::move(path);
  f.text = std::move(text);
  f.lineStarts.push_back(0);
  for (size_t i = 0; i < f.text.size(); ++i)
    if (f.text[i] == '\n') f.lineStarts.push_back(i + 1);
  files_.push_back(std::move(f));
  return (int)files_.size() - 1;
}

std::string SourceManager::lineText(int file, int line) const {
  if (file < 0 || file >= count()) return "";
  const SourceFile& f = files_[file];
  if (line < 1 || line > (int)f.lineStarts.size()) return "";
  size_t b = f.lineStarts[line - 1];
  size_t e = f.text.find('\n', b);
  if (e == std::string::npos) e = f.text.size();
  std::string s = f.text.substr(b, e - b);
  if (!s.empty() && s.back() == '\r') s.pop_back();
  return s;
}

std::string SourceManager::where(const SourceLoc& loc) const {
  if (!loc.valid() || loc.file >= count()) return "<unknown>";
  return files_[loc.file].path + ":" + std::to_string(loc.line) + ":" + std::to_string(loc.col);
}

}  // namespace cnnc
