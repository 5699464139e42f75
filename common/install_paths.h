// install_paths.h: where an installed cnnc finds its pieces. `cmake --install` (and the .deb) lay
// them out relative to the executable:
//   PREFIX/bin/cnnc
//   PREFIX/lib/cnnc/libcnnc_runtime.a, libcnnc_capi.a, aarch64/...   linked into what cnnc builds
//   PREFIX/include/cnnc/capi.h                                       the C API
//   PREFIX/share/cnnc/nets/                                          the network library (imports)
// A cnnc running from its build tree has none of these beside it and uses the build paths compiled
// into it, so one binary works in both places without a setting.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>

namespace cnnc {

// PREFIX/rel if it exists beside the running executable (bin/..), else "".
inline std::string installedPath(const std::string& rel) {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  std::filesystem::path p = exe.parent_path().parent_path() / rel;
  if (exe.parent_path().filename() != "bin" || !std::filesystem::exists(p, ec)) return "";
  return p.lexically_normal().string();
}

// The first of: the environment variable `env` if set, the installed path, the build path.
inline std::string installedOr(const char* env, const std::string& rel, const std::string& buildPath) {
  if (const char* e = env ? getenv(env) : nullptr) return e;
  std::string p = installedPath(rel);
  return p.empty() ? buildPath : p;
}

}  // namespace cnnc
