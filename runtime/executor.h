// executor.h: runs a plan: kernel calls in order over one arena whose size is planned per image.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "HalideRuntime.h"
#include "plan.h"
#include "weights.h"

namespace cnnc::rt {

struct KernelEntry { const char* name; int (*fn)(void**); };

class Executor {
public:
  // Binds the plan's kernels to the compiled functions; false if the tables disagree.
  bool init(const Plan& p, const KernelEntry* table, int count, std::string& err);
  void setWeights(const Weights& w);
  // Checks that a batch of `n` fits in memory before allocating anything.
  bool reserve(int64_t n, std::string& err);
  // input: n images in the plan's input shape (NCHW); output: n x output shape.
  bool run(const float* input, int64_t n, std::vector<float>& output, std::string& err);
  size_t arenaBytes(int64_t n) const { return (size_t)(plan_->arenaPerImage * n) * sizeof(float); }
  const Plan& plan() const { return *plan_; }
  // Per-call wall time of the last run, in ms, when profiling is on.
  bool profile = false;
  std::vector<double> callMs;

private:
  struct Buf {
    halide_buffer_t b{};
    halide_dimension_t dims[5]{};
  };
  void makeBuffer(Buf& buf, float* data, const Dims& shape, int64_t n);

  const Plan* plan_ = nullptr;
  std::vector<int (*)(void**)> fns_;
  std::vector<std::vector<float>> consts_;
  std::vector<float> arena_;
  int64_t batch_ = 0;
  std::vector<std::vector<Buf>> callBufs_;  // per call, per argument
};

// The last error message the Halide runtime reported (bounds or shape assertions).
std::string lastHalideError();

}  // namespace cnnc::rt
