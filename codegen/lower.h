// lower.h: KernelSpec -> Halide pipeline. The algorithm of each op is a few lines of Halide; the
// schedule is applied apart from it (schedule.h). Buffers are NCHW as in PyTorch, so Halide's
// dimensions are (x, y, c, n) for images and (f, n) for flat tensors.
#pragma once
#include <vector>

#include "Halide.h"
#include "kernel.h"

namespace cnnc::codegen {

struct Lowered {
  Halide::Pipeline pipeline;
  std::vector<Halide::Argument> args;  // in call order; the output buffer is appended by Halide
};

Lowered lowerKernel(const KernelSpec& k);
// The training kinds (lower_train.cpp).
Lowered lowerTrainingKernel(const KernelSpec& k);

}  // namespace cnnc::codegen
