// gpu.h: the GPU schedules the op files share (CUDA, and OpenCL, which tests the GPU path on
// CPUs). An op's GPU schedule places the Funcs its algorithm returned; these helpers map them to
// blocks and threads (gpu.cpp explains the rules).
#pragma once
#include <vector>

#include "op_helpers.h"

namespace cnnc::codegen {

// The generic GPU schedule of a kernel whose output is `out`: every reduction of the pipeline
// except those in `placed` (which the op schedules itself) is computed at root, and each computed
// stage maps its pure loops to blocks and threads. Steps 1-3 of gpu.cpp's header.
void gpuSchedule(Func out, const KernelSpec& k, const std::vector<Func>& placed = {});

// A direct convolution (or input gradient) `out` = `acc` over `r`: a register tile per thread.
// Step 4 of gpu.cpp's header.
void gpuConvSchedule(Func out, Func acc, RDom r, const KernelSpec& k);

// The kernel of an op whose GPU schedule is the shared gpuSchedule: its algorithm's Funcs `f` (a
// struct with `out` and `args`), placed by `cpu` on a CPU target, then finished.
template <typename Funcs>
Lowered lowerWithSchedules(const KernelSpec& k, Funcs f, void (*cpu)(Funcs&, const KernelSpec&)) {
  if (k.schedule.gpu) gpuSchedule(f.out, k);
  else cpu(f, k);
  return finish(f.out, k, f.args);
}

}  // namespace cnnc::codegen
