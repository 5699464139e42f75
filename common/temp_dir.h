// temp_dir.h: a fresh private folder for intermediate files (link glue, tuning candidates), under
// $TMPDIR as POSIX tools place them, /tmp when it is unset.
#pragma once
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace cnnc {

// Creates <$TMPDIR or /tmp>/<prefix>XXXXXX (mode 0700) and stores its path in `path`; false with
// `err` saying why (the folder tried and the system's reason) when it cannot.
inline bool makeTempDir(const std::string& prefix, std::string& path, std::string& err) {
  const char* env = getenv("TMPDIR");
  std::string base = env && *env ? env : "/tmp";
  if (base.size() > 1 && base.back() == '/') base.pop_back();
  std::string t = base + "/" + prefix + "XXXXXX";
  std::vector<char> tmpl(t.begin(), t.end());
  tmpl.push_back('\0');
  if (!mkdtemp(tmpl.data())) {
    err = "cannot create a temporary folder in " + base + ": " + strerror(errno) + " (set TMPDIR to a writable folder)";
    return false;
  }
  path = tmpl.data();
  return true;
}

}  // namespace cnnc
