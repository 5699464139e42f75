// parser.h: turns .cnn source text into a FileAst, and loads a file with all of its imports.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ast.h"
#include "diagnostics.h"

namespace cnnc {

// Limits that keep hostile inputs from exhausting time or stack.
struct ParseLimits {
  size_t maxFileBytes = 4u << 20;
  size_t maxTokens = 400000;
  int maxNesting = 200;  // brackets, braces and parentheses open at once
};

// Parses one source already added to the SourceManager. Returns null on any error (all reported).
std::unique_ptr<FileAst> parseSource(int file, SourceManager& sm, Diagnostics& diags,
                                     const ParseLimits& limits = {});

// Folders searched for an `import` (and a main file) not found where it is named: CNNC_PATH
// (colon-separated), then the network library of an installed cnnc (PREFIX/share/cnnc/nets).
std::vector<std::string> importSearchPath();

// A whole program: the main file and everything it imports, transitively, each file once.
struct Program {
  std::vector<std::unique_ptr<FileAst>> files;  // files[0] is the main file
};

// Reads `path` and its imports. Returns false when any file failed to load or parse.
bool loadProgram(const std::string& path, SourceManager& sm, Diagnostics& diags, Program& out,
                 const ParseLimits& limits = {});

// Checks that `text` is valid UTF-8 without NUL bytes; on failure sets byte offset and reason.
bool checkText(const std::string& text, size_t& badOffset, std::string& why);

}  // namespace cnnc
