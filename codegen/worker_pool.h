// worker_pool.h: independent jobs run in a few long-lived forked worker processes.
//
// Why processes: a crash inside Halide or LLVM (an abort, a segfault) takes one worker down, not
// the driver, and no Halide state is shared between threads. Why long-lived ones: a process per
// kernel paid LLVM's start-up in every child (lazy symbol binding, re-faulting libLLVM's pages,
// growing a fresh heap); squeezenet1_1's 122 kernels compiled in 24.6 s that way and in 15.6 s in
// one process (-j 1, 2-core Zen 4).
#pragma once
#include <cstddef>
#include <functional>
#include <string>

namespace cnnc::codegen {

struct WorkerPoolOptions {
  int workers = 1;
  std::function<void()> initWorker;  // run once in each worker before its first job
};

// Runs work(i) for every i in [0, jobs), in parallel workers, each job once. work returns whether it
// succeeded; an exception it throws is printed to stderr and counts as a failure. done(i, ok, crashed)
// runs in the calling process as each job finishes; `crashed` says its worker died during the job
// (a new worker takes the remaining jobs). When done returns false no further job starts. Returns
// false with `err` when the pool itself fails (no fork, no socket).
bool runInWorkers(size_t jobs, const WorkerPoolOptions& opts, const std::function<bool(size_t)>& work,
                  const std::function<bool(size_t, bool ok, bool crashed)>& done, std::string& err);

}  // namespace cnnc::codegen
