// lower.h: KernelSpec -> Halide pipeline. Each op's file in codegen/ops/ holds its algorithms and
// their CPU and GPU schedules; ops/registry.cpp maps kernel kinds to them. Buffers are NCHW as in
// PyTorch, so Halide's dimensions are (x, y, c, n) for images and (f, n) for flat tensors.
#pragma once
#include <vector>

#include "Halide.h"
#include "kernel.h"

namespace cnnc::codegen {

struct Lowered {
  Halide::Pipeline pipeline;
  std::vector<Halide::Argument> args;  // in call order; the output buffer is appended by Halide
};

// The kernel of `k`, scheduled for a GPU when k.schedule.gpu is set (gpuDefaultSchedule), else for
// the CPU whose vector width is k.schedule.lanes.
Lowered lowerKernel(const KernelSpec& k);

}  // namespace cnnc::codegen
