// tune.h: `cnnc tune`: measures schedule candidates of a net's kernels on this machine and appends
// what it measured to the tuning database (tuning_db.h).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "kernel.h"

namespace cnnc::codegen {

struct TuneOptions {
  std::string target;    // resolved Halide target
  std::string dbPath;    // tuning database
  std::string cacheDir;  // compiled-kernel cache (candidates are cached like any kernel)
  std::string net;       // label of this tune in the records, e.g. "resnet18/infer"
  std::string version;   // cnnc version, stamped on records
  double budgetSeconds = 600;
  bool resume = false;   // subtract the time earlier records of `net` spent from the budget
  int batch = 1;         // images per measured call
  int jobs = 0;          // parallel candidate compiles; 0: number of cores
  bool verbose = false;
  // Also try the Adams2019 autoscheduler on forward convs. Off by default: with Debian's default cost
  // model it took about 60 s per ResNet-18 kernel to schedule and ran 7-80x slower than the defaults.
  bool adams2019 = false;
  // When the candidates come in an informed order (a cost model fitted to the database, or the best
  // schedules of similar kernels on record), a kernel stops after this many measured candidates
  // without one 1% faster than its best; 0 never stops early.
  int patience = 8;
  // Remote measurement: a command template run once per candidate. `{exe}` is replaced by the
  // path of a static measurement executable built for the target (its arguments follow `{exe}`, or
  // go where `{args}` stands); the command must run it on the target and relay its one line of JSON
  // on stdout. Examples: "qemu-aarch64 {exe}" (plumbing only: qemu timings mean nothing),
  // "scp -q {exe} board:/tmp/m && ssh board /tmp/m {args}". Empty: time in this process.
  std::string remote;
  // Called after each kernel: kernels done, total, best speedup of that kernel, budget seconds left.
  std::function<void(int, int, double, double)> progress;
};

// One input of a kernel call as the plan binds it: the per-image shape of an activation, or the
// whole shape of a constant (a parameter, batch statistics).
struct TuneArg {
  Dims shape;
  bool batched = true;
};

// A distinct kernel of the net and how often one run of the net calls it.
struct TuneKernel {
  KernelSpec spec;
  int calls = 1;
  bool inference = false;  // from the inference plan, whose channel-vector convs take weights packed at load
  // Its inputs in call order, from the plan's first call of it. Conv kinds derive theirs from the
  // spec (weights unpacked); the memory-bound kinds (spatialTunable) are timed on these.
  std::vector<TuneArg> args;
};

// Whether cnnc has schedule choices for this kernel: convolutions (forward, input and weight
// gradients, depthwise and grouped), linears (forward and input gradient) and the memory-bound
// kinds of spatialTunable.
bool tunable(const KernelSpec& k);

// The elementwise and pooling kinds whose image outputs are scheduled by scheduleSpatial
// (ops/op_helpers.h): batch norm (applied, affine, input gradient), activations and their
// gradients, add, mul, max and average pools and the average pool's gradient. The tuner chooses
// their vector width, whether the plane is vectorised as one row, and the channels per task.
bool spatialTunable(const KernelSpec& k);

// The schedules tried for `k`, the default (defaultSchedule) first. Every candidate keeps the
// register tile within the target's 32 vector registers. With `adams2019`, forward convs also try
// Halide's Adams2019 autoscheduler (autoBatch = 1; the tuner sets the batch).
std::vector<Schedule> scheduleCandidates(const KernelSpec& k, bool adams2019 = false);

// Tunes each kernel within the budget, heaviest first (default time x calls), skipping candidates
// the database already holds for this target. Each measured candidate is appended to the database
// as soon as it is timed. Prints a progress line and a summary on stderr. False with `err` only for
// failures that stop the tune (an unwritable database, a target that cannot be timed here).
bool tuneKernels(const std::vector<TuneKernel>& kernels, const TuneOptions& o, std::string& err);

}  // namespace cnnc::codegen
