// executor.h: runs a plan: kernel calls in order over one arena whose size is planned per image.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "HalideRuntime.h"
#include "device.h"
#include "plan.h"
#include "common/huge_alloc.h"
#include "weights.h"

namespace cnnc::rt {

struct KernelEntry { const char* name; int (*fn)(void**); };

class Executor {
public:
  Executor() = default;
  Executor(const Executor&) = delete;  // owns device memory
  Executor& operator=(const Executor&) = delete;
  ~Executor() { releaseDevice(); }
  // Binds the plan's kernels to the compiled functions; false if the tables disagree.
  bool init(const Plan& p, const KernelEntry* table, int count, std::string& err);
  // Inference: constants derived from (copies of) the weights.
  void setWeights(const Weights& w);
  // The same, taking over w's storage where it can (w is left partly empty): no second copy of the
  // weights in memory.
  void setWeights(Weights&& w);
  // Training: constants point into live storage (parameters, gradients, statistics); `ptrs[i]`
  // for constant i, `isInt[i]` when it holds int32.
  void bindConstants(std::vector<void*> ptrs, std::vector<bool> isInt);
  // Checks that a batch of `n` fits in memory before allocating anything.
  bool reserve(int64_t n, std::string& err);
  // input: n images in the plan's input shape (NCHW); output: n x output shape.
  bool run(const float* input, int64_t n, std::vector<float>& output, std::string& err);
  // Training: runs every call with inputs and labels already placed; see train.cpp.
  bool runCalls(int64_t n, std::string& err);
  // The arena storage of activation tensor `t` for a batch of `n` (valid after prepare(n)).
  // On a GPU the tensors live on the device: toDevice after writing a tensor here, toHost
  // before reading one (both do nothing on the CPU).
  float* tensorData(int t, int64_t n);
  bool toDevice(int t, int64_t n, std::string& err);
  bool toHost(int t, int64_t n, std::string& err);
  bool onGpu() const { return dev_ != nullptr; }
  bool prepare(int64_t n, std::string& err);
  size_t arenaBytes(int64_t n) const { return (size_t)(plan_->arenaPerImage * n) * sizeof(float); }
  const Plan& plan() const { return *plan_; }
  // Training with frozen parameters: active[c] false skips call c (empty: every call runs).
  std::vector<bool> active;
  // Called after each call that ran (data-parallel training starts gradient sums and combines
  // batch statistics there); false stops the run with its error.
  std::function<bool(size_t call, std::string& err)> afterCall;
  // Per-call wall time of the last run, in ms, when profiling is on.
  bool profile = false;
  std::vector<double> callMs;

private:
  struct Buf {
    halide_buffer_t b{};
    halide_dimension_t dims[5]{};
  };
  void makeBuffer(Buf& buf, void* data, const Dims& shape, int64_t n, bool isInt = false);

  void dumpCall(size_t c, int64_t n);
  // CNNC_CHECK_WRITES: whether call c wrote only its output (arena compared with a copy taken
  // before the call, and a guard zone after the arena's end).
  bool checkWrites(size_t c, int64_t n, std::string& err) const;
  // GPU: one device arena mirroring the host arena, one device copy per constant, and every call
  // argument a crop of those, so tensors stay on the device between kernels.
  bool placeOnDevice(int64_t n, std::string& err);
  bool syncConstants(bool toDev, std::string& err);
  bool copyRegion(halide_buffer_t& src, int64_t offset, int64_t count, bool toDev, std::string& err);
  void releaseDevice();
  const halide_device_interface_t* dev_ = nullptr;
  bool deviceOpen_ = false;
  Buf arenaDev_;
  std::vector<Buf> constDev_;
  std::vector<std::unique_ptr<Buf>> crops_;  // released before the buffers they crop
  std::vector<bool> constWritten_;           // constant i is some call's output (gradients, statistics)
  bool constsOnDevice_ = false;
  bool constsChange_ = false;                // training: the host updates parameters between runs
  const char* dumpDir_ = nullptr;
  bool checkWrites_ = false;
  std::vector<float> shadow_;  // checkWrites_: the arena (and its guard zone) before the call
  const Plan* plan_ = nullptr;
  std::vector<int (*)(void**)> fns_;
  void constantsChanged();  // after consts_ is set: pointers and buffers follow it
  std::vector<std::vector<float>> consts_;  // owned constants (inference)
  std::vector<void*> constPtr_;
  std::vector<bool> constInt_;
  std::vector<float, HugePageAllocator<float>> arena_;
  int64_t batch_ = 0;
  std::vector<std::vector<Buf>> callBufs_;  // per call, per argument
};

// The last error message the Halide runtime reported (bounds or shape assertions).
std::string lastHalideError();

}  // namespace cnnc::rt
