// aot.cpp: see aot.h.
//
// Kernels compile in a few long-lived forked worker processes (worker_pool.h): a crash in one cannot
// take the driver down, and no Halide state is shared between threads. Every object lands in the
// cache under a key made of the kernel signature, the target, and the identity of this cnnc
// binary (so a rebuilt compiler never reuses stale code).
#include "aot.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "Halide.h"
#include "common/atomic_file.h"
#include "common/fnv1a.h"
#include "common/install_paths.h"
#include "common/temp_dir.h"
#include "lower.h"
#include "worker_pool.h"

#ifndef CNNC_RUNTIME_LINK_EXTRA
#define CNNC_RUNTIME_LINK_EXTRA ""
#endif
#ifndef CNNC_RUNTIME_LIB
#define CNNC_RUNTIME_LIB ""
#endif
#ifndef CNNC_CAPI_LIB
#define CNNC_CAPI_LIB ""
#define CNNC_CAPI_HEADER ""
#endif
#ifndef CNNC_PYTHON_MODULE
#define CNNC_PYTHON_MODULE ""
#endif
#ifndef CNNC_RUNTIME_AARCH64_LIB
#define CNNC_RUNTIME_AARCH64_LIB ""
#define CNNC_CAPI_AARCH64_LIB ""
#endif
#ifndef CNNC_VERSION
#define CNNC_VERSION "0.0.0"
#endif

namespace fs = std::filesystem;

namespace cnnc::codegen {

namespace {

// Identity of this compiler build: version plus size and mtime of the running binary.
std::string compilerStamp() {
  static std::string stamp = [] {
    struct stat st {};
    std::string s = std::string(CNNC_VERSION) + " halide" + "14";
    if (stat("/proc/self/exe", &st) == 0) s += " " + std::to_string(st.st_size) + " " + std::to_string((long long)st.st_mtime);
    return s;
  }();
  return stamp;
}

std::string cacheRoot(const AotOptions& o) {
  if (!o.cacheDir.empty()) return o.cacheDir;
  if (const char* e = getenv("CNNC_CACHE_DIR"); e && *e) return e;
  if (const char* x = getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/cnnc";
  const char* home = getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.cache/cnnc";
}

// Schedules `p` with Halide's Adams2019 autoscheduler (Debian's plugin, its default cost model),
// for this machine's cores and a 32 MiB last-level cache.
void autoSchedule(Halide::Pipeline& p, const Halide::Target& t) {
  static bool loaded = [] {
    Halide::load_plugin(CNNC_HALIDE_PLUGIN_DIR "/libautoschedule_adams2019.so");
    return true;
  }();
  (void)loaded;
  int cores = (int)std::max<long>(1, sysconf(_SC_NPROCESSORS_ONLN));
  p.auto_schedule("Adams2019", t, Halide::MachineParams(cores, 32 * 1024 * 1024, 40));
}

// CPU kernels are built without Halide's argument asserts and bounds-query paths. The executor
// hands every kernel buffers made from the same plan that shaped the kernel, and never asks a
// kernel for bounds, so both only cost compile time: on mobilenet_v3_small's 332 kernels the
// asserts took 20 s of 70 s of single-core compile time (2-core Zen 4). GPU kernels keep them: there
// the asserts also carry the device API's errors (a failed copy or allocation) back to the caller.
Halide::Target kernelTarget(const std::string& resolved) {
  Halide::Target t = Halide::Target(resolved).with_feature(Halide::Target::NoRuntime);
  if (!t.has_gpu_feature()) t = t.with_feature(Halide::Target::NoAsserts).with_feature(Halide::Target::NoBoundsQuery);
  return t;
}

}  // namespace

bool resolveTarget(const std::string& name, std::string& resolved, std::string& err) {
  if (name == "host") {
    resolved = Halide::get_host_target().to_string();
    return true;
  }
  // "host-cuda[-cuda_capability_NN]", "host-opencl": this CPU's features plus the GPU's.
  std::string full = name;
  if (name.rfind("host-", 0) == 0) full = Halide::get_host_target().to_string() + name.substr(4);
  if (!Halide::Target::validate_target_string(full)) {
    err = "unknown target '" + name + "': use 'host', 'host-cuda' (with -cuda_capability_NN), or a Halide target string such as x86-64-linux-avx2, "
          "x86-64-linux-avx512 or arm-64-linux";
    return false;
  }
  Halide::Target t(full);
  bool x86 = t.arch == Halide::Target::X86 && t.bits == 64;
  bool arm = t.arch == Halide::Target::ARM && t.bits == 64 && t.os == Halide::Target::Linux;
  if (!x86 && !arm) {
    err = "target '" + name + "' is not supported: cnnc builds for x86-64 (host, x86-64-linux-avx2, ...), NVIDIA GPUs (host-cuda) and arm-64-linux";
    return false;
  }
  bool cuda = t.has_feature(Halide::Target::CUDA), opencl = t.has_feature(Halide::Target::OpenCL);
  if ((cuda || opencl) && !x86) {
    err = "target '" + name + "' is not supported: GPU builds (cuda, opencl) are for x86-64 hosts";
    return false;
  }
  if (cuda && opencl) {
    err = "target '" + name + "' names two GPU APIs: pick cuda or opencl";
    return false;
  }
  // Halide's default capability (2.0) lacks what its CUDA code generator uses here; 3.5 is the
  // oldest card CUDA 11 drivers still run.
  if (cuda && t.get_cuda_capability_lower_bound() < 70) t = t.with_feature(Halide::Target::CUDACapability70);
  resolved = t.to_string();
  return true;
}

bool compileKernels(const std::vector<KernelSpec>& specs, const AotOptions& opts, std::vector<std::string>& objects, AotStats& stats, std::string& err) {
  auto t0 = std::chrono::steady_clock::now();
  std::string target;
  if (!resolveTarget(opts.target, target, err)) return false;
  std::string dir = cacheRoot(opts) + "/" + target;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) { err = "cannot create the kernel cache '" + dir + "': " + ec.message(); return false; }

  struct Job { const KernelSpec* spec; std::string path; size_t index; };
  std::vector<Job> todo;
  for (const auto& s : specs) {
    std::string key = s.signature() + "|" + target + "|" + compilerStamp();
    std::string path = dir + "/" + s.functionName() + "-" + fnv1aHex(key) + ".o";
    objects.push_back(path);
    stats.kernels++;
    if (fs::exists(path)) stats.cached++;
    else todo.push_back({&s, path, objects.size() - 1});
  }
  std::string rtPath = dir + "/halide_runtime-" + fnv1aHex(target + compilerStamp()) + ".o";
  bool needRuntime = !fs::exists(rtPath);
  objects.push_back(rtPath);

  // CNNC_STMT_DIR: each kernel compiled now also as Halide's lowered statement, to read what a
  // schedule made of it (docs/cli.md).
  std::string stmtDir;
  if (const char* d = getenv("CNNC_STMT_DIR"); d && *d && !todo.empty()) {
    fs::create_directories(d, ec);
    if (!ec && access(d, W_OK) == 0) stmtDir = d;
    else fprintf(stderr, "cnnc: warning: CNNC_STMT_DIR=%s is not a folder cnnc can write to; no statements written\n", d);
  }

  // The runtime (when missing) is job 0; kernel todo[i] is job i + (needRuntime ? 1 : 0).
  size_t first = needRuntime ? 1 : 0;
  auto compileTo = [](const std::string& path, const std::function<void(const std::string&)>& fn) {
    std::string tmp = tempPathFor(path);
    fn(tmp);
    if (int e = moveIntoPlace(tmp, path)) throw std::runtime_error("cannot write " + path + ": " + strerror(e));
  };
  auto what = [&](size_t job) {
    if (job < first) return std::string("the Halide runtime");
    const KernelSpec& s = *todo[job - first].spec;
    return s.functionName() + " (" + s.signature() + ")";
  };
  auto work = [&](size_t job) {
    if (job < first) {
      compileTo(rtPath, [&](const std::string& tmp) { Halide::compile_standalone_runtime(tmp, Halide::Target(target)); });
      return true;
    }
    const Job& j = todo[job - first];
    try {
      compileTo(j.path, [&](const std::string& tmp) {
        auto k0 = std::chrono::steady_clock::now();
        Lowered l = lowerKernel(*j.spec);
        if (j.spec->schedule.autoBatch) autoSchedule(l.pipeline, kernelTarget(target));
        l.pipeline.compile_to_object(tmp, l.args, j.spec->functionName(), kernelTarget(target));
        if (!stmtDir.empty())
          l.pipeline.compile_to_lowered_stmt(stmtDir + "/" + j.spec->functionName() + ".stmt", l.args, Halide::StmtOutputFormat::Text, kernelTarget(target));
        if (opts.verbose)
          fprintf(stderr, "cnnc: compiled %s in %.2f s\n", j.spec->signature().c_str(),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - k0).count());
      });
    } catch (const Halide::CompileError& e) {
      fprintf(stderr, "cnnc: error: compiling %s: %s\n", what(job).c_str(), e.what());
      return false;
    } catch (const std::exception& e) {
      fprintf(stderr, "cnnc: error: compiling %s: %s\n", what(job).c_str(), e.what());
      return false;
    }
    return true;
  };
  bool failed = false;
  auto done = [&](size_t job, bool ok, bool crashed) {
    if (ok) {
      if (job >= first) stats.compiled++;
      return true;
    }
    if (opts.keepGoing && job >= first) {
      objects[todo[job - first].index].clear();
      return true;
    }
    err = "kernel compile failed: " + what(job) + (crashed ? " (the compiler crashed in it)" : "");
    failed = true;
    return false;
  };
  WorkerPoolOptions pool;
  pool.workers = opts.jobs > 0 ? opts.jobs : (int)std::max<long>(1, sysconf(_SC_NPROCESSORS_ONLN));
  // A rejected tuning candidate is expected: its Halide error would only be noise.
  if (opts.keepGoing && !opts.verbose) pool.initWorker = [] { (void)!freopen("/dev/null", "w", stderr); };
  if (!runInWorkers(first + todo.size(), pool, work, done, err)) return false;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return !failed;
}

namespace {

// Writes the glue source (kernel table + embedded plan) into a fresh temporary folder.
bool writeGlue(const std::string& planJson, const std::string& trainJson, const std::vector<KernelSpec>& specs, std::string& work,
               std::string& gluePath, std::string& err) {
  if (!makeTempDir("cnnc-link-", work, err)) return false;
  std::ostringstream glue;
  glue << "// Generated by cnnc: the kernel table and the plan of this network.\n"
       << "#include <cstddef>\nextern \"C\" {\n";
  for (const auto& s : specs) glue << "int " << s.functionName() << "_argv(void**);\n";
  glue << "}\nnamespace cnnc::rt {\nstruct KernelEntry { const char* name; int (*fn)(void**); };\n"
       << "extern const KernelEntry kKernels[] = {\n";
  for (const auto& s : specs) glue << "  {\"" << s.functionName() << "\", " << s.functionName() << "_argv},\n";
  glue << "};\nextern const int kNumKernels = " << specs.size() << ";\n";
  auto bytes = [&](const char* name, const std::string& text) {
    glue << "extern const unsigned char " << name << "[] = {";
    for (size_t i = 0; i < text.size(); ++i) glue << (i % 32 == 0 ? "\n" : "") << (int)(unsigned char)text[i] << ",";
    glue << "0};\nextern const size_t " << name << "Size = " << text.size() << ";\n";
  };
  bytes("kPlanJson", planJson);
  bytes("kTrainPlanJson", trainJson);
  glue << "}\n";
  gluePath = work + "/glue.cpp";
  std::ofstream f(gluePath);
  f << glue.str();
  if (!f) { err = "cannot write " + gluePath; fs::remove_all(work); return false; }
  return true;
}

// Runs a shell command; on failure returns its captured stderr in `log`.
bool runLogged(const std::string& cmd, const std::string& work, std::string& log) {
  int rc = system((cmd + " 2>'" + work + "/cmd.log'").c_str());
  if (rc == 0) return true;
  std::ifstream f(work + "/cmd.log");
  std::stringstream ss;
  ss << f.rdbuf();
  log = ss.str().substr(0, 4000);
  return false;
}

// Whether the shell finds `cmd` on PATH.
bool onPath(const std::string& cmd) { return system(("command -v " + cmd + " >/dev/null 2>&1").c_str()) == 0; }

bool findCxx(std::string& cxx, std::string& err) {
  cxx = getenv("CXX") ? getenv("CXX") : "c++";
  if (!onPath(cxx)) {
    err = "no C++ linker: '" + cxx + "' was not found; install g++ (apt-get install g++) or set CXX";
    return false;
  }
  return true;
}

}  // namespace

bool toolchainFor(const AotOptions& opts, Toolchain& tc, std::string& err) {
  std::string target;
  if (!resolveTarget(opts.target, target, err)) return false;
  if (target.rfind("arm-", 0) != 0) {
    tc.runtimeLib = installedOr("CNNC_RUNTIME_LIB", "lib/cnnc/libcnnc_runtime.a", CNNC_RUNTIME_LIB);
    tc.capiLib = installedOr("CNNC_CAPI_LIB", "lib/cnnc/libcnnc_capi.a", CNNC_CAPI_LIB);
    tc.ar = "ar";
    // Open MPI's library when the runtime was built with it (data-parallel training).
    tc.linkFlags = std::string("-lz -lpthread -ldl ") + CNNC_RUNTIME_LINK_EXTRA;
    return findCxx(tc.cxx, err);
  }
  const char* hint = "install the aarch64 cross toolchain (apt-get install g++-aarch64-linux-gnu zlib1g-dev:arm64, after "
                     "dpkg --add-architecture arm64) and rebuild cnnc";
  tc.runtimeLib = installedOr(nullptr, "lib/cnnc/aarch64/libcnnc_runtime.a", CNNC_RUNTIME_AARCH64_LIB);
  tc.capiLib = installedOr(nullptr, "lib/cnnc/aarch64/libcnnc_capi.a", CNNC_CAPI_AARCH64_LIB);
  tc.cxx = "aarch64-linux-gnu-g++";
  tc.ar = "aarch64-linux-gnu-ar";
  tc.linkFlags = "-static -lz -lpthread";
  if (tc.runtimeLib.empty() || !onPath(tc.cxx)) {
    err = "target '" + target + "' needs the aarch64 runtime, which this cnnc was built without: " + hint;
    return false;
  }
  return true;
}

bool linkExecutable(const std::string& planJson, const std::string& trainJson, const std::vector<KernelSpec>& specs,
                    const std::vector<std::string>& objects, const std::string& output, const AotOptions& opts, std::string& err) {
  Toolchain tc;
  if (!toolchainFor(opts, tc, err)) return false;
  const std::string& runtimeLib = tc.runtimeLib;
  if (runtimeLib.empty() || !fs::exists(runtimeLib)) {
    err = "the cnnc runtime library was not found at '" + runtimeLib + "': rebuild cnnc, or set CNNC_RUNTIME_LIB";
    return false;
  }
  std::string work, gluePath;
  if (!writeGlue(planJson, trainJson, specs, work, gluePath, err)) return false;
  std::string tmpOut = tempPathFor(output);
  // The kernel objects go to the linker in a response file: DenseNet-121 has 700 of them, and one
  // shell argument is limited to 128 KiB (MAX_ARG_STRLEN), which their paths passed.
  std::string rsp = work + "/objects.rsp";
  {
    std::ofstream r(rsp);
    for (const auto& o : objects) {
      for (char ch : o) {
        if (ch == ' ' || ch == '\t' || ch == '\\' || ch == '\'' || ch == '"') r << '\\';
        r << ch;
      }
      r << '\n';
    }
    if (!r) {
      err = "cannot write the linker's object list in " + work;
      fs::remove_all(work);
      return false;
    }
  }
  std::string cmd = tc.cxx + " -O1 -o '" + tmpOut + "' '" + gluePath + "' '@" + rsp + "'";
  cmd += " '" + runtimeLib + "' " + tc.linkFlags;
  if (opts.verbose) fprintf(stderr, "cnnc: %s (%zu kernel objects listed in the response file)\n", cmd.c_str(), objects.size());
  std::string text;
  if (!runLogged(cmd, work, text)) {
    if (text.empty()) text = "the linker printed nothing; run with -v to see its command\n";
    unlink(tmpOut.c_str());
    if (text.find("cannot open output file") != std::string::npos || text.find("Permission denied") != std::string::npos)
      err = "cannot write '" + output + "': the folder is missing or not writable";
    else
      err = "linking failed:\n" + text;
    fs::remove_all(work);
    return false;
  }
  fs::remove_all(work);
  if (int e = moveIntoPlace(tmpOut, output)) {
    err = "cannot write '" + output + "': " + strerror(e);
    return false;
  }
  return true;
}

}  // namespace cnnc::codegen

namespace cnnc::codegen {

bool buildLibrary(const std::string& planJson, const std::string& trainJson, const std::vector<KernelSpec>& specs,
                  const std::vector<std::string>& objects, const std::string& outDir, const std::string& netName, bool python,
                  const AotOptions& opts, std::string& err) {
  Toolchain tc;
  if (!toolchainFor(opts, tc, err)) return false;
  const std::string& capiLib = tc.capiLib;
  std::string capiHeader = installedOr(nullptr, "include/cnnc/capi.h", CNNC_CAPI_HEADER);
  if (!fs::exists(capiLib) || !fs::exists(capiHeader)) {
    err = "the cnnc C API library was not found at '" + capiLib + "': rebuild cnnc, or set CNNC_CAPI_LIB";
    return false;
  }
  std::error_code ec;
  fs::create_directories(outDir, ec);
  if (ec || access(outDir.c_str(), W_OK) != 0) { err = "cannot write to '" + outDir + "': " + (ec ? ec.message() : strerror(errno)); return false; }
  std::string work, gluePath;
  std::string wrapper = installedOr(nullptr, "share/cnnc/python/cnnc_net.py", CNNC_PYTHON_MODULE);
  if (python && !fs::exists(wrapper)) {
    err = "the Python module cnnc_net.py was not found at '" + wrapper + "': reinstall cnnc";
    return false;
  }
  if (!writeGlue(planJson, trainJson, specs, work, gluePath, err)) return false;
  std::string log;
  if (!runLogged(tc.cxx + " -O1 -fPIC -c '" + gluePath + "' -o '" + work + "/glue.o'", work, log)) {
    err = "compiling the glue failed:\n" + log;
    fs::remove_all(work);
    return false;
  }
  // One archive: C API + runtime core + glue + kernels + Halide runtime (GNU ar MRI script).
  std::string lib = outDir + "/lib" + netName + ".a";
  std::string tmpLib = work + "/lib.a";
  std::ofstream mri(work + "/lib.mri");
  mri << "CREATE " << tmpLib << "\nADDLIB " << capiLib << "\nADDMOD " << work << "/glue.o\n";
  for (const auto& o : objects) mri << "ADDMOD " << o << "\n";
  mri << "SAVE\nEND\n";
  mri.close();
  if (!runLogged(tc.ar + " -M < '" + work + "/lib.mri'", work, log)) {
    err = "creating the archive failed (is binutils' ar installed?):\n" + log;
    fs::remove_all(work);
    return false;
  }
  std::ifstream h(capiHeader);
  std::stringstream hs;
  hs << h.rdbuf();
  std::string header = hs.str();
  std::string upper;
  for (char c : netName) upper += (char)toupper((unsigned char)c);
  std::string defs = "/* Generated by cnnc for network " + netName + ". Link: -l" + netName + " -lstdc++ -lz -lpthread -ldl -lm */\n";
  std::string tmpHeader = work + "/net.h";
  std::ofstream(tmpHeader) << defs << header;
  // Each file goes in place by a rename: a failed build leaves the old one whole.
  auto install = [&](const std::string& from, const std::string& to) {
    std::string tmp = tempPathFor(to);
    fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
    if (ec) unlink(tmp.c_str());
    else if (int e = moveIntoPlace(tmp, to)) ec = std::error_code(e, std::generic_category());
  };
  if (python) {
    // The whole archive in one shared library. -Bsymbolic: each network's library binds to its
    // own plan and kernels, so several networks load into one Python process.
    std::string so = work + "/lib.so";
    if (!runLogged(tc.cxx + " -shared -Wl,-Bsymbolic -o '" + so + "' -Wl,--whole-archive '" + tmpLib + "' -Wl,--no-whole-archive -lz -lpthread -ldl -lm",
                   work, log)) {
      err = "linking the shared library failed:\n" + log;
      fs::remove_all(work);
      return false;
    }
    install(so, outDir + "/lib" + netName + ".so");
    if (!ec) install(wrapper, outDir + "/cnnc_net.py");
  } else {
    install(tmpLib, lib);
    if (!ec) install(tmpHeader, outDir + "/" + netName + ".h");
  }
  fs::remove_all(work);
  if (ec) { err = "cannot write to '" + outDir + "': " + ec.message(); return false; }
  return true;
}

}  // namespace cnnc::codegen
