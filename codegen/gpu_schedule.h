// gpu_schedule.h: schedules for GPU targets (CUDA, and OpenCL, which tests the GPU path on CPUs).
#pragma once
#include "kernel.h"
#include "lower.h"

namespace cnnc::codegen {

// True for a resolved Halide target string with a GPU feature (cuda or opencl).
bool isGpuTarget(const std::string& target);

// The schedule of every kernel on a GPU target: the plain algorithms (no channel vectors, no
// Winograd), whose loops gpuSchedule() maps to blocks and threads.
Schedule gpuDefaultSchedule();

// Replaces the CPU schedule that lowering applied to `l` with a GPU schedule (gpu_schedule.cpp).
void gpuSchedule(Lowered& l, const KernelSpec& k);

}  // namespace cnnc::codegen
