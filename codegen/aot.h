// aot.h: ahead-of-time compilation of a plan's kernels to object files (cached on disk, compiled
// in parallel), one shared Halide runtime per target, and the final link into an executable.
#pragma once
#include <string>
#include <vector>

#include "graph.h"
#include "plan.h"

namespace cnnc::codegen {

struct AotOptions {
  std::string target = "host";  // "host" or a Halide target string
  std::string cacheDir;          // empty: $CNNC_CACHE_DIR, $XDG_CACHE_HOME/cnnc or ~/.cache/cnnc
  int jobs = 0;                  // parallel kernel compiles; 0: number of cores
  bool verbose = false;
  // Tuning: a kernel that fails to compile leaves an empty path in `objects` instead of failing
  // the whole call (a schedule candidate Halide rejects is skipped, not fatal).
  bool keepGoing = false;
};

struct AotStats {
  int kernels = 0, cached = 0, compiled = 0;
  double seconds = 0;
};

// Resolves "host" and validates the string; returns false with `err` for an unknown target.
bool resolveTarget(const std::string& name, std::string& resolved, std::string& err);

// What links for a target: the C++ driver, the archiver and cnnc's runtime archives. aarch64 uses
// Debian's cross toolchain and links statically (the result runs on any aarch64 Linux).
struct Toolchain {
  std::string cxx, ar, runtimeLib, capiLib, linkFlags;
};

// The toolchain of opts.target; false with `err` saying what to install.
bool toolchainFor(const AotOptions& opts, Toolchain& tc, std::string& err);

// Compiles every kernel of `plan` (or finds it in the cache) plus the Halide runtime.
bool compileKernels(const std::vector<KernelSpec>& specs, const AotOptions& opts, std::vector<std::string>& objects, AotStats& stats, std::string& err);

// Writes the glue source (kernel table + embedded plan) and links everything into `output`,
// atomically: a failed link leaves no file at `output`.
// `trainJson` may be empty (the network cannot be trained); `specs` covers both plans.
bool linkExecutable(const std::string& planJson, const std::string& trainJson, const std::vector<KernelSpec>& specs,
                    const std::vector<std::string>& objects, const std::string& output, const AotOptions& opts, std::string& err);

// `--emit=lib`: writes DIR/lib<net>.a (kernels, Halide runtime, cnnc runtime, C API, both plans)
// and DIR/<net>.h (the C API of runtime/capi.h). With `python` (`--emit=python`): DIR/lib<net>.so
// instead, and DIR/cnnc_net.py, the module that loads it (runtime/python/cnnc_net.py).
bool buildLibrary(const std::string& planJson, const std::string& trainJson, const std::vector<KernelSpec>& specs,
                  const std::vector<std::string>& objects, const std::string& outDir, const std::string& netName, bool python,
                  const AotOptions& opts, std::string& err);

}  // namespace cnnc::codegen
